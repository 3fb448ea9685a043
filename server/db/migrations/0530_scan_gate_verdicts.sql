-- An offline gate's own verdict on a scan it decided by its synced lists (Terminal.admit), uploaded with the
-- record: whether it let the holder in, and why not. NULL for every other scan (and older terminals').
ALTER TABLE scans ADD COLUMN terminal_admitted boolean, ADD COLUMN terminal_reason text;
