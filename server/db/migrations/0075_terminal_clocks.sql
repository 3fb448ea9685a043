-- Terminal clocks: what each terminal's clock said against ours at its last time sync (GET /v1/terminal/time),
-- shown in the operator's terminal list; and, on an online scan, how far its scanned_at was off when that was
-- beyond the clock-skew tolerance (NULL: within it).
ALTER TABLE terminals ADD COLUMN clock_offset_ms bigint, ADD COLUMN clock_checked_at timestamptz;
ALTER TABLE scans ADD COLUMN clock_offset_ms bigint;
