-- ctx.db commits count their keys and bytes here, in one of a few rows per app picked at random, instead of in the
-- app's miniapps row: every commit of an app held that one row's lock through its commit's WAL flush, which
-- capped an app at about one commit per flush (~200/s on the benchmark machine). An app's usage is its miniapps
-- row plus the sum of its shards; a commit checks the quota against that sum as it reads it (so commits in flight
-- at the same moment may pass the quota by what they add together).
CREATE TABLE miniapp_usage_shards (
    app_id text NOT NULL,
    shard  smallint NOT NULL,
    keys   bigint NOT NULL,
    bytes  bigint NOT NULL,
    PRIMARY KEY (app_id, shard)
);
