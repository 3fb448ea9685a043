-- The events of uploaded offline scans, kept until the app bound to the terminal's scene has handled them: written
-- in the transaction that stores the scans (and settles their ride charges), deleted only after the app's handler
-- returned. So a server stopped between the upload's commit and the app's handler loses no event (a bus app's
-- refund of an offline ride's concession, a gate's entry count): delivery is at least once. Every node's deliverer
-- (server/terminals/scans/outbox.py) claims a terminal's earliest pending row with FOR UPDATE SKIP LOCKED under a
-- lease, so a terminal's events reach the app one after another in scan-time order; the uploading process leases
-- its rows at once and delivers them right after the commit.
CREATE TABLE scan_outbox (
    scan_id     uuid PRIMARY KEY,
    terminal_id text NOT NULL,
    scanned_at  timestamptz NOT NULL,
    event       text NOT NULL,                         -- the ScanEvent the app's handler is called with (JSON)
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'failed')),
    created_at  timestamptz NOT NULL,
    run_at      timestamptz NOT NULL,                  -- when it may be tried next (later after a failure)
    attempt     integer NOT NULL DEFAULT 0,            -- deliveries tried so far
    lease_until timestamptz,
    last_error  text
);
CREATE INDEX scan_outbox_order ON scan_outbox (terminal_id, scanned_at, scan_id) WHERE status = 'pending';
CREATE INDEX scan_outbox_due ON scan_outbox (run_at) WHERE status = 'pending';
