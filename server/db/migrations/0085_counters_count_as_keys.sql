-- Bounded counters are storage keys too (issue 16: an app kept 1,000 counters past a 30-key quota).
-- From now on creating a counter is accounted in miniapps.storage_keys like a document; count the counters
-- that exist already. An app already past its quota keeps what it has and can create no more keys.
UPDATE miniapps m
SET storage_keys = m.storage_keys + c.n
FROM (SELECT app_id, count(*) AS n FROM miniapp_counters GROUP BY app_id) c
WHERE m.app_id = c.app_id;
