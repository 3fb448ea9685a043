-- When each terminal last signed in (`POST /v1/terminal/token`): the operator's "last seen". Written once per token,
-- not per scan, so the hot scan path gains no write and the scans table no index.
ALTER TABLE terminals ADD COLUMN last_signed_in_at timestamptz;
