-- Mini-app jobs: one row per declared schedule ([jobs] in the released manifest; `schedule` set, `run_at` its next
-- firing) and one per one-shot job an app scheduled (`schedule` NULL). Every node's runner claims due rows with
-- FOR UPDATE SKIP LOCKED and holds each under a lease (`lease_until`): a row is claimable when it is pending, due,
-- and not leased or its lease expired (the node running it died), so each run happens on one node at a time.

CREATE TABLE miniapp_jobs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id          text NOT NULL REFERENCES miniapps (app_id),
    name            text NOT NULL,
    schedule        text,                              -- five-field cron in county time; NULL: a one-shot job
    data            jsonb NOT NULL DEFAULT '{}',
    idempotency_key text,                              -- ctx.jobs.schedule(key=...): the same key, the same job
    due_at          timestamptz NOT NULL,              -- the firing (or one-shot time) the current run is for
    run_at          timestamptz NOT NULL,              -- when it may run next (due_at, later after a failure)
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed', 'cancelled')),
    attempt         integer NOT NULL DEFAULT 0,        -- runs of the current firing so far
    lease_until     timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL,
    finished_at     timestamptz
);
CREATE UNIQUE INDEX miniapp_jobs_schedules ON miniapp_jobs (app_id, name) WHERE schedule IS NOT NULL;
CREATE UNIQUE INDEX miniapp_jobs_keys ON miniapp_jobs (app_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX miniapp_jobs_due ON miniapp_jobs (run_at) WHERE status = 'pending';
CREATE INDEX miniapp_jobs_pending_once ON miniapp_jobs (app_id) WHERE status = 'pending' AND schedule IS NULL;
