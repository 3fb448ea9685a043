-- Credentials: the signed trust list, partner issuer keys, health status, code generations, revocations.

-- Every published trust list, newest = highest version. The envelope is the exact signed bytes served.
CREATE TABLE trust_list_versions (
    version    integer PRIMARY KEY,
    envelope   bytea NOT NULL,
    etag       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Issuer keys of partner counties, added by an operator; a removed key leaves the next trust list.
CREATE TABLE partner_issuer_keys (
    issuer           integer NOT NULL CHECK (issuer BETWEEN 100000 AND 999999),
    key_id           bytea NOT NULL CHECK (length(key_id) = 4),
    alg              smallint NOT NULL,
    public_key       bytea NOT NULL,
    credential_types text[] NOT NULL,
    not_before       timestamptz NOT NULL,
    not_after        timestamptz NOT NULL CHECK (not_after >= not_before),
    added_at         timestamptz NOT NULL,
    added_by         text NOT NULL,
    removed_at       timestamptz,
    PRIMARY KEY (issuer, key_id)
);

-- Health status by the blind index of the ID number, so a status set before the resident registers applies
-- once they verify their real name. The current colour is the newest row already in effect.
CREATE TABLE health_status_history (
    id              bigserial PRIMARY KEY,
    id_number_index bytea NOT NULL,
    colour          text NOT NULL CHECK (colour IN ('green', 'yellow', 'red')),
    reason          text NOT NULL,
    effective_at    timestamptz NOT NULL,
    set_at          timestamptz NOT NULL,
    set_by          text NOT NULL,
    import_digest   bytea
);
CREATE INDEX health_status_current ON health_status_history (id_number_index, effective_at DESC, id DESC);

-- One row per imported file (SHA-256 of its bytes): importing the same file again answers the first result.
CREATE TABLE health_status_imports (
    digest     bytea PRIMARY KEY,
    result     jsonb,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL
);

-- Revoking a resident's codes moves them to a new generation; subject refs of older generations are dead.
CREATE TABLE ankang_generations (
    account_id bigint PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    generation integer NOT NULL,
    revoked_at timestamptz NOT NULL
);

-- Per-issuer revocation list; each entry has its own version so terminals fetch deltas after a version.
CREATE TABLE revocations (
    issuer     integer NOT NULL,
    version    bigint NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('subject', 'device_certificate')),
    ref        bytea NOT NULL,
    revoked_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    reason     text NOT NULL,
    PRIMARY KEY (issuer, version),
    UNIQUE (issuer, kind, ref)
);
