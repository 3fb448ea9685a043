-- Delivered and given-up rows of the scan outbox are kept for a while (YIMA_SCAN_OUTBOX_RETENTION_DAYS, then every
-- node's deliverer deletes them), so an operator sees what reached apps and what did not and replays it
-- (`yima scan-outbox list|replay|purge`). Tries the app could not be asked (busy, not loaded, suspended) are put
-- off with a growing pause and counted apart (`deferred`): they do not use up the app's tries (`attempt`).
ALTER TABLE scan_outbox
    ADD COLUMN deferred integer NOT NULL DEFAULT 0,   -- tries put off: the app could not be asked
    ADD COLUMN finished_at timestamptz;              -- when it was delivered or given up
ALTER TABLE scan_outbox DROP CONSTRAINT scan_outbox_status_check;
ALTER TABLE scan_outbox ADD CONSTRAINT scan_outbox_status_check CHECK (status IN ('pending', 'delivered', 'failed'));
-- Rows given up before have their retention start now, not when they were written: else a failed row older than the
-- retention period would be deleted by the first hourly purge, just when operators can first replay it.
UPDATE scan_outbox SET finished_at = now() WHERE status = 'failed';
CREATE INDEX scan_outbox_finished ON scan_outbox (finished_at) WHERE status <> 'pending';
