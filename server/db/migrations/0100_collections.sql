-- ctx.db collections (issue 15): documents of declared collections, and one key per document per declared index.
-- Ids and keys compare bytewise (COLLATE "C", bytea) so the database's order is the SDK's order on every host.
CREATE TABLE miniapp_records (
    app_id     text NOT NULL,
    collection text NOT NULL,
    doc_id     text COLLATE "C" NOT NULL,
    body       jsonb NOT NULL,
    version    bigint NOT NULL,
    size_bytes integer NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (app_id, collection, doc_id)
);

-- key: the order-preserving encoding of the index's fields (yima_sdk.query); written in the same transaction as
-- the document. find = an index range scan here, then the documents by primary key.
CREATE TABLE miniapp_record_keys (
    app_id     text NOT NULL,
    collection text NOT NULL,
    index_name text NOT NULL,
    key        bytea NOT NULL,
    doc_id     text COLLATE "C" NOT NULL,
    PRIMARY KEY (app_id, collection, index_name, key, doc_id)
);
-- a write replaces every key of its document
CREATE INDEX miniapp_record_keys_doc ON miniapp_record_keys (app_id, collection, doc_id);

-- an index holds every document of its collection once it is listed here (built on its first query)
CREATE TABLE miniapp_record_indexes (
    app_id     text NOT NULL,
    collection text NOT NULL,
    index_name text NOT NULL,
    built_at   timestamptz NOT NULL,
    PRIMARY KEY (app_id, collection, index_name)
);
