-- The app bound to the scene of a settled offline ride may give part of it back (a rider's concession, transfer or
-- cap that only the app knows): the ride keeps that app, the platform's scan id by which the app names it
-- (`ride_<scan id>`), and what was given back, never more than it charged.
ALTER TABLE onecard_offline_rides
    ADD COLUMN scan_id uuid,
    ADD COLUMN app_id text,
    ADD COLUMN refunded_fen bigint NOT NULL DEFAULT 0 CHECK (refunded_fen BETWEEN 0 AND greatest(amount_fen, 0));
CREATE UNIQUE INDEX onecard_offline_rides_scan ON onecard_offline_rides (scan_id) WHERE scan_id IS NOT NULL;
