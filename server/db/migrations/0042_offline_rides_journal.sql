-- An offline upload writes its one journal and then its rides, linked to it, in one transaction
-- (repository.record_rides), so every settled ride's journal exists by construction, and journals are
-- append-only (never deleted). The foreign key only added a lookup and a FOR KEY SHARE lock per ride,
-- ~3.5 ms per 1,000 rides on the batch upload path. A ride whose journal went missing would still be found:
-- the daily reconciliation reports rides that no posting matches (rides_unposted).
ALTER TABLE onecard_offline_rides DROP CONSTRAINT onecard_offline_rides_journal_id_fkey;
