-- Terminals, scene policies and the durable scan record.

CREATE TABLE terminals (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('bus', 'clinic', 'pharmacy', 'scenic', 'counter')),
    scene         text NOT NULL,
    public_key    bytea NOT NULL CHECK (length(public_key) = 32),
    enabled       boolean NOT NULL DEFAULT true,
    session_epoch integer NOT NULL DEFAULT 1,      -- bumped on disable: old tokens' session ids die
    created_at    timestamptz NOT NULL,
    created_by    text NOT NULL,
    disabled_at   timestamptz
);

-- Which colours pass where. scene '' is the default for every scene of the kind; a named scene overrides it.
CREATE TABLE scene_policies (
    kind              text NOT NULL CHECK (kind IN ('bus', 'clinic', 'pharmacy', 'scenic', 'counter')),
    scene             text NOT NULL DEFAULT '',
    allowed_colours   text[] NOT NULL,
    show_name         boolean NOT NULL,
    replay            text NOT NULL CHECK (replay IN ('once', 'per_terminal')),
    accept_ride_codes boolean NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    updated_by        text NOT NULL DEFAULT 'migration',
    PRIMARY KEY (kind, scene)
);
INSERT INTO scene_policies (kind, scene, allowed_colours, show_name, replay, accept_ride_codes) VALUES
    ('bus',      '', '{green}',             false, 'once',         true),
    ('clinic',   '', '{green,yellow,red}',  true,  'per_terminal', false),
    ('pharmacy', '', '{green,yellow}',      false, 'once',         false),
    ('scenic',   '', '{green}',             false, 'per_terminal', false),
    ('counter',  '', '{green,yellow}',      true,  'per_terminal', false);

-- Every scan, online or uploaded offline, stored before it is answered.
CREATE TABLE scans (
    id              uuid PRIMARY KEY,
    terminal_id     text NOT NULL REFERENCES terminals (id),
    received_at     timestamptz NOT NULL,
    scanned_at      timestamptz NOT NULL,
    mode            text NOT NULL CHECK (mode IN ('online', 'offline')),
    credential_type text,                    -- NULL when the payload could not be decoded
    issuer          integer,
    subject_ref     bytea,
    account_id      bigint,                  -- our own residents only
    colour          text,
    result          text NOT NULL CHECK (result IN ('accept', 'reject')),
    reason          text,
    repeat          boolean NOT NULL DEFAULT false,
    record_id       text,                    -- offline uploads: the terminal's record id
    amount_fen      integer,
    clock_source    text,
    local_result    text,
    settlement      text
);
CREATE UNIQUE INDEX scans_offline_record ON scans (terminal_id, record_id) WHERE record_id IS NOT NULL;
CREATE INDEX scans_account ON scans (account_id, received_at DESC) WHERE account_id IS NOT NULL;

-- Durable replay claims for offline uploads (a ride code's certificate + counter is spent once anywhere).
CREATE TABLE scan_replay_claims (
    key        bytea PRIMARY KEY,
    scan_id    uuid NOT NULL,
    claimed_at timestamptz NOT NULL
);
