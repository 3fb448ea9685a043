-- An app's ctx.db usage, summed over its shards (0101): one definition for every query that needs it (the storage
-- and ctx.db quota checks, the operator's view of an app; server/platform/{storage,db,apps}/repository.py). A SQL
-- function of one SELECT, STABLE: PostgreSQL inlines it into the calling query, so it costs what the sum did.
CREATE FUNCTION miniapp_db_usage(app text) RETURNS TABLE (keys bigint, bytes bigint)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(s.keys), 0)::bigint, coalesce(sum(s.bytes), 0)::bigint
    FROM miniapp_usage_shards s WHERE s.app_id = app
$$;
