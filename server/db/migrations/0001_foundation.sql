-- Foundation: the application role, accounts and roles, OTP login, sessions, signing keys, idempotency, audit.

-- The server runs as yima_app (SET by the pool). It owns nothing, so it cannot alter tables or rewrite the audit log.
DO $$ BEGIN
    CREATE ROLE yima_app NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
GRANT USAGE ON SCHEMA public TO yima_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO yima_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO yima_app;
GRANT SELECT ON schema_migrations TO yima_app;

CREATE TABLE accounts (
    id              bigserial PRIMARY KEY,
    phone_index     bytea NOT NULL UNIQUE,          -- keyed blind index of the phone number
    phone_enc       bytea NOT NULL,                 -- AES-GCM, bound to field "phone"
    name_enc        bytea,
    id_number_enc   bytea,
    id_number_index bytea UNIQUE,                   -- one ID number, one account
    birth_date      date,
    sex             char(1) CHECK (sex IN ('M', 'F')),
    verified_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE account_roles (
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role       text NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, role)
);

CREATE TABLE otp_codes (
    id          bigserial PRIMARY KEY,
    phone_index bytea NOT NULL,
    code_hash   bytea NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    consumed_at timestamptz
);
CREATE INDEX otp_codes_phone ON otp_codes (phone_index, created_at DESC);

-- A session is a refresh-token family: every refresh rotates the token; reusing a spent one ends the family.
CREATE TABLE sessions (
    id          uuid PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    end_reason  text
);
CREATE INDEX sessions_account ON sessions (account_id);

CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY,
    session_id  uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    spent_at    timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE signing_keys (
    kid             text PRIMARY KEY,
    purpose         text NOT NULL,
    alg             text NOT NULL,
    public_key      bytea NOT NULL,
    private_key_enc bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    retired_at      timestamptz
);
CREATE INDEX signing_keys_purpose ON signing_keys (purpose, created_at);

-- Stored results of retried writes: same key + same request -> same answer; same key + other request -> 409.
CREATE TABLE idempotency_keys (
    scope        text NOT NULL,                    -- e.g. "onecard.charge:<account>"
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    status       integer NOT NULL,
    response     jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

-- Append-only, hash-chained. yima_app may insert and read, never change or remove.
CREATE TABLE audit_log (
    seq        bigint PRIMARY KEY,
    at         timestamptz NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    target     text NOT NULL,
    details    jsonb NOT NULL,
    prev_hash  bytea NOT NULL,
    hash       bytea NOT NULL
);
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM yima_app;

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
