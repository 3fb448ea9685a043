-- Finished one-shot jobs are pruned a while after they finished (server/platform/jobs.py): find them by that time.
CREATE INDEX miniapp_jobs_finished ON miniapp_jobs (finished_at) WHERE status <> 'pending';
