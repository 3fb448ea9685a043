-- The claim pruner (server/terminals/claims.py) deletes the oldest claims in bounded batches.
CREATE INDEX scan_replay_claims_claimed_at ON scan_replay_claims (claimed_at);
