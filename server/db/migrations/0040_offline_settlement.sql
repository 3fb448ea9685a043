-- Offline settlement writes one journal per upload (one posting per wallet) instead of one per ride; a resident's
-- statement lists the rides themselves, found through this index.
CREATE INDEX onecard_offline_rides_account ON onecard_offline_rides (onecard_account_id, settled_at)
    WHERE status = 'settled';
