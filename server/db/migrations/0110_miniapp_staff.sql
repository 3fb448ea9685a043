-- Staff roles of mini-apps: who holds which of an app's declared roles ([staff.roles]), at which unit.
-- Granted and revoked by operators and the app's admins (audited); a revoke deletes the row (the audit keeps it).
CREATE TABLE miniapp_staff (
    app_id     text NOT NULL REFERENCES miniapps (app_id),
    account_id bigint NOT NULL REFERENCES accounts (id),
    role       text NOT NULL,
    unit       text NOT NULL DEFAULT '',          -- '' = app-wide; else `kind:id`, ASCII
    granted_at timestamptz NOT NULL,
    granted_by text NOT NULL,
    PRIMARY KEY (app_id, account_id, role, unit)
);
