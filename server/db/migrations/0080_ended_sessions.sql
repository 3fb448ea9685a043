-- Ended sessions (logout, refresh-token reuse, a disabled terminal's token epoch) until their last access token
-- has expired. The durable record behind the guard's in-memory set: Redis pub/sub only announces an end, so a
-- Redis outage or restart can neither lose one nor let an ended session through (server/auth/sessions.py).
CREATE TABLE ended_sessions (
    session_id  text PRIMARY KEY,
    ended_until timestamptz NOT NULL
);
CREATE INDEX ended_sessions_until ON ended_sessions (ended_until);
