-- The audit chain under a keyed MAC, and signed checkpoints of its head (issue 17).
-- `mac` says how a record's hash was made: 1, plain SHA-256 (records written before this migration; anyone with
-- database access could recompute them), 2, HMAC-SHA256 under a key derived from the master key, which the
-- database never holds. Verification accepts 1 only before the first 2.
ALTER TABLE audit_log ADD COLUMN mac smallint NOT NULL DEFAULT 1;

-- A checkpoint is the chain's head (its size and the head record's MAC) signed by the trust root key, the shape
-- of Certificate Transparency's signed tree head. Also exported outside the database (a file on each node and
-- GET /v1/audit/checkpoints), so deleting the newest records or rewriting old ones is caught by `yima audit verify`.
CREATE TABLE audit_checkpoints (
    size       bigint PRIMARY KEY,
    head       bytea NOT NULL,
    signed_at  timestamptz NOT NULL,
    key_id     text NOT NULL,
    signature  bytea NOT NULL
);
REVOKE UPDATE, DELETE, TRUNCATE ON audit_checkpoints FROM yima_app;
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
