-- A commit of counters and new documents runs as one statement (server/platform/db_repository.commit_simple):
-- this raises the refusal that rolls the whole statement back, with a message the platform maps to its error.
CREATE FUNCTION yima_db_refuse(reason text, subject text) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'yima.db:' || reason, DETAIL = subject;
END
$$;
