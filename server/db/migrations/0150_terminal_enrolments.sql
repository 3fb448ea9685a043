-- One-time enrolment codes: an operator names a terminal (name, kind, scene) and hands its staff a short code;
-- the terminal (the /terminal/ page) registers its own public key with the code, so no private key ever leaves
-- the device and nobody types a key. Only a hash of the code is kept; a code enrols once, before it expires.
CREATE TABLE terminal_enrolments (
    code_hash   bytea PRIMARY KEY,
    name        text NOT NULL,
    kind        text NOT NULL,
    scene       text NOT NULL,
    created_at  timestamptz NOT NULL,
    created_by  text NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    terminal_id text REFERENCES terminals (id)
);
