-- `yima-sdk login`: the device-code flow (RFC 8628 style) that hands the CLI a developer token once a developer,
-- signed in on another device, confirms the short user code shown by the CLI.
CREATE TABLE developer_device_logins (
    id               bigserial PRIMARY KEY,
    device_code_hash bytea NOT NULL UNIQUE,             -- sha256 of the CLI's secret polling code; never stored
    user_code        text NOT NULL,                     -- 8 consonants, shown to the developer as XXXX-XXXX
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    interval_s       integer NOT NULL,                  -- minimum seconds between polls; grows on each slow_down
    polled_at        timestamptz,
    account_id       bigint REFERENCES accounts (id),   -- the developer who confirmed the user code
    confirmed_at     timestamptz,
    token_id         bigint REFERENCES developer_tokens (id)  -- set when the CLI received its token: single use
);

-- A user code names one sign-in until it is confirmed; afterwards the same letters may be drawn again.
CREATE UNIQUE INDEX developer_device_logins_pending_code ON developer_device_logins (user_code)
    WHERE confirmed_at IS NULL;
CREATE INDEX developer_device_logins_expires ON developer_device_logins (expires_at);
