-- Settlement re-prices an offline ride with the fare table in force when it happened (the scene's app's published
-- `fares`); `terminal_fen` keeps what the terminal asked when that differed from the charge, so a correction is on
-- record, never taken silently. NULL: the ride was charged as the terminal asked.
ALTER TABLE onecard_offline_rides ADD COLUMN terminal_fen bigint;
