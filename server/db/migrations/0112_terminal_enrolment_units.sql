-- The staff unit an operator names with an enrolment code, for the terminal that enrols with it. A table of its
-- own keyed by the code's hash: terminal_enrolments is created by a later-numbered migration (0150).
CREATE TABLE terminal_enrolment_units (
    code_hash bytea PRIMARY KEY,
    unit      text NOT NULL CHECK (unit ~ '^[a-z][a-z0-9_]{0,31}:[A-Za-z0-9][A-Za-z0-9._-]{0,63}$')
);
