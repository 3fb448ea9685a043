-- Terminal lists (`ctx.terminals.hold` / `drop`): small entries an app holds for the terminals of one staff unit
-- (a spot's tickets of the day), synced by those terminals incrementally (`GET /v1/terminal/lists?after=N`).
-- No resident id ever leaves here: an entry bound to a resident carries holder tags (yima_sdk.lists), keyed
-- hashes of the subject refs of the resident's Ankang codes under the salt of its (app, list, unit).

-- One row per (app, unit): the last change number of its lists. Taking it (UPDATE ... RETURNING) orders the
-- changes of a unit by commit, so a terminal that synced up to N never misses a change numbered below N.
CREATE TABLE terminal_list_units (
    app_id text NOT NULL REFERENCES miniapps (app_id),
    unit   text NOT NULL,
    seq    bigint NOT NULL,
    PRIMARY KEY (app_id, unit)
);

-- The random salt of one list at one unit: a leaked list's tags match no other list's.
CREATE TABLE terminal_list_salts (
    app_id text NOT NULL,
    list   text NOT NULL,
    unit   text NOT NULL,
    salt   bytea NOT NULL CHECK (length(salt) = 16),
    PRIMARY KEY (app_id, list, unit),
    FOREIGN KEY (app_id, unit) REFERENCES terminal_list_units (app_id, unit)
);

CREATE TABLE terminal_list_entries (
    app_id       text NOT NULL,
    list         text NOT NULL,
    unit         text NOT NULL,
    key          text NOT NULL,
    seq          bigint NOT NULL,                   -- the unit's change that wrote this row last
    dropped      boolean NOT NULL DEFAULT false,    -- a tombstone until it expires
    value        bytea NOT NULL,                    -- the app's JSON, compact
    valid_from   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    pass_number  bigint,
    account_id   bigint,                            -- bound to a resident: never sent to a terminal
    generation   integer,                           -- of the resident's codes, when the tags were made
    first_bucket bigint,
    tags         bytea,                             -- 8 bytes per code bucket from first_bucket on
    PRIMARY KEY (app_id, list, unit, key),
    FOREIGN KEY (app_id, list, unit) REFERENCES terminal_list_salts (app_id, list, unit)
);
CREATE INDEX terminal_list_entries_sync ON terminal_list_entries (app_id, unit, seq);
CREATE INDEX terminal_list_entries_expiry ON terminal_list_entries (expires_at);
CREATE INDEX terminal_list_entries_holder ON terminal_list_entries (account_id) WHERE account_id IS NOT NULL;
