-- Whose turn it is to deliver a terminal's uploaded scans' events (scan_outbox, 0250): one row per terminal with
-- events still pending, claimed whole by one deliverer at a time (server/terminals/scans/outbox.py). A claim of a
-- terminal instead of a row keeps its events in scan-time order across processes: a later upload's events wait
-- while an earlier one waits for its retry or is being delivered by another worker or node, and a deliverer's
-- claim reads one row per due terminal, however many rows wait (the claim's cost does not grow with the backlog).
CREATE TABLE scan_outbox_terminals (
    terminal_id text PRIMARY KEY,
    run_at      timestamptz NOT NULL,  -- when a deliverer may take the terminal: now when its events wait, the
                                       -- retry time after a failure, the lease's end while one holds it
    lease_token uuid                   -- the holder's; NULL when nobody holds it
);
CREATE INDEX scan_outbox_terminals_due ON scan_outbox_terminals (run_at);

-- the turns of rows written before: due at their terminal's earliest pending row's time; a lease held then ends
INSERT INTO scan_outbox_terminals (terminal_id, run_at)
SELECT DISTINCT ON (terminal_id) terminal_id, run_at FROM scan_outbox WHERE status = 'pending'
ORDER BY terminal_id, scanned_at, scan_id;

DROP INDEX scan_outbox_due;
ALTER TABLE scan_outbox DROP COLUMN run_at, DROP COLUMN lease_until;
