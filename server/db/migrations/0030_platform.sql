-- Mini-app platform: developer tokens, apps and versions (with their archives), releases, consent, the app-scoped
-- user map, per-app storage (documents and bounded counters), the resident inbox, pending payments, scene bindings.

CREATE TABLE developer_tokens (
    id          bigserial PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES accounts (id),
    token_hash  bytea NOT NULL UNIQUE,               -- sha256 of the opaque token; the token itself is never stored
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

CREATE TABLE miniapps (
    app_id                  text PRIMARY KEY,
    developer_id            bigint NOT NULL REFERENCES accounts (id),
    name                    text NOT NULL,
    status                  text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    suspended_reason        text,
    -- the release: residents in the phased group get phased_version, everyone else stable_version
    stable_version          text,
    phased_version          text,
    phased_percent          integer NOT NULL DEFAULT 0 CHECK (phased_percent BETWEEN 0 AND 100),
    phased_whitelist        bigint[] NOT NULL DEFAULT '{}',
    -- quotas (operator-adjustable)
    calls_per_minute        integer NOT NULL DEFAULT 6000,
    resident_calls_per_minute integer NOT NULL DEFAULT 120,
    storage_max_keys        integer NOT NULL DEFAULT 100000,
    storage_max_bytes       bigint NOT NULL DEFAULT 104857600,
    storage_keys            integer NOT NULL DEFAULT 0,
    storage_bytes           bigint NOT NULL DEFAULT 0,
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL
);

CREATE TABLE miniapp_versions (
    app_id        text NOT NULL REFERENCES miniapps (app_id),
    version       text NOT NULL,
    digest        text NOT NULL,
    status        text NOT NULL CHECK (status IN ('checks_failed', 'in_review', 'approved', 'rejected')),
    checks        jsonb NOT NULL,
    manifest      jsonb NOT NULL,
    archive       bytea NOT NULL,
    size_bytes    integer NOT NULL,
    review_reason text,
    reviewed_by   bigint,
    uploaded_at   timestamptz NOT NULL,
    reviewed_at   timestamptz,
    released_at   timestamptz,                        -- last time it became the stable version (rollback window)
    PRIMARY KEY (app_id, version)
);
CREATE INDEX miniapp_versions_review_queue ON miniapp_versions (uploaded_at) WHERE status = 'in_review';

CREATE TABLE miniapp_consents (
    account_id bigint NOT NULL REFERENCES accounts (id),
    app_id     text NOT NULL REFERENCES miniapps (app_id),
    scope      text NOT NULL,
    granted    boolean NOT NULL,                      -- false: the resident refused; the phone does not ask again
    decided_at timestamptz NOT NULL,
    PRIMARY KEY (account_id, app_id, scope)
);

-- app-scoped pseudonymous id -> account, per app only (notify and payments find the resident through it)
CREATE TABLE miniapp_users (
    app_id      text NOT NULL,
    app_user_id text NOT NULL,
    account_id  bigint NOT NULL REFERENCES accounts (id),
    first_seen  timestamptz NOT NULL,
    PRIMARY KEY (app_id, app_user_id)
);

-- `collection` is '' for everything the SDK stores today; it keeps room for named collections later
CREATE TABLE miniapp_documents (
    app_id     text NOT NULL,
    collection text NOT NULL DEFAULT '',
    key        text NOT NULL,
    value      jsonb NOT NULL,
    version    bigint NOT NULL,
    size_bytes integer NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (app_id, collection, key)
);

CREATE TABLE miniapp_counters (
    app_id     text NOT NULL,
    collection text NOT NULL DEFAULT '',
    key        text NOT NULL,
    value      bigint NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (app_id, collection, key)
);

CREATE TABLE miniapp_inbox (
    id          bigserial PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES accounts (id),
    app_id      text NOT NULL,
    title       text NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL,
    read_at     timestamptz
);
CREATE INDEX miniapp_inbox_account ON miniapp_inbox (account_id, id DESC);

CREATE TABLE miniapp_payments (
    id              bigserial PRIMARY KEY,
    app_id          text NOT NULL,
    account_id      bigint NOT NULL REFERENCES accounts (id),
    amount_fen      integer NOT NULL CHECK (amount_fen > 0),
    reason          text NOT NULL,
    idempotency_key text NOT NULL,
    status          text NOT NULL CHECK (status IN ('pending_confirmation', 'succeeded', 'declined', 'failed')),
    failure         text,
    charge_id       bigint,
    created_at      timestamptz NOT NULL,
    decided_at      timestamptz,
    UNIQUE (app_id, account_id, idempotency_key)
);

-- passes apps issued (tickets, door plates): the signed payload carries the id; revocation is looked up here
CREATE TABLE miniapp_passes (
    id          bigserial PRIMARY KEY,
    app_id      text NOT NULL,
    kind        text NOT NULL,
    holder      text,                                 -- app-scoped user id
    valid_until timestamptz NOT NULL,
    issued_at   timestamptz NOT NULL,
    revoked_at  timestamptz
);

-- a terminal scene (kind + scene name) delivers its accepted scans to one app
CREATE TABLE miniapp_scene_bindings (
    kind       text NOT NULL,
    scene      text NOT NULL,
    app_id     text NOT NULL REFERENCES miniapps (app_id),
    bound_at   timestamptz NOT NULL,
    PRIMARY KEY (kind, scene)
);
