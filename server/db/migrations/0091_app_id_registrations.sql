-- App ids are reserved only by an operator-approved registration (issue 16: a garbage upload used to register
-- any id, lookalikes of gov.guangde.* included, for whoever uploaded it first).
--
-- A developer organisation holds namespaces an operator verified (`com.example` covers `com.example.*`; no two
-- namespaces overlap), and its members request ids inside them; an operator approves or rejects each request.
-- The county's organisation holds `gov.guangde` and `cn.gov`; no other organisation is given a namespace under
-- `gov` or `cn.gov`.

CREATE TABLE developer_orgs (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    created_by  bigint REFERENCES accounts (id),     -- NULL: created by a migration
    created_at  timestamptz NOT NULL
);

CREATE TABLE developer_org_members (
    org_id      bigint NOT NULL REFERENCES developer_orgs (id),
    account_id  bigint NOT NULL REFERENCES accounts (id),
    added_at    timestamptz NOT NULL,
    PRIMARY KEY (org_id, account_id)
);
CREATE INDEX developer_org_members_account ON developer_org_members (account_id);

CREATE TABLE developer_namespaces (
    namespace   text PRIMARY KEY,                    -- reverse-DNS, lower-case ASCII; covers namespace || '.%'
    org_id      bigint NOT NULL REFERENCES developer_orgs (id),
    assigned_by bigint REFERENCES accounts (id),
    assigned_at timestamptz NOT NULL
);
CREATE INDEX developer_namespaces_org ON developer_namespaces (org_id);

CREATE TABLE app_id_registrations (
    app_id       text PRIMARY KEY,
    org_id       bigint NOT NULL REFERENCES developer_orgs (id),
    status       text NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    requested_by bigint REFERENCES accounts (id),    -- NULL: backfilled by this migration
    requested_at timestamptz NOT NULL,
    decided_by   bigint REFERENCES accounts (id),
    decided_at   timestamptz,
    reason       text NOT NULL DEFAULT ''
);
CREATE INDEX app_id_registrations_pending ON app_id_registrations (requested_at) WHERE status = 'pending';

DO $$
DECLARE
    county bigint;
    dev record;
    org bigint;
BEGIN
    INSERT INTO developer_orgs (name, created_at) VALUES ('Guangde County', now()) RETURNING id INTO county;
    INSERT INTO developer_namespaces (namespace, org_id, assigned_at)
        VALUES ('gov.guangde', county, now()), ('cn.gov', county, now());
    -- Apps uploaded before registrations existed keep their ids: one organisation per developer (with no
    -- namespace, so it gains no new ids), its apps registered to it. An id under the county's namespaces that
    -- someone else took waits for an operator's decision instead of being approved.
    FOR dev IN SELECT DISTINCT developer_id FROM miniapps ORDER BY developer_id LOOP
        INSERT INTO developer_orgs (name, created_at)
            VALUES ('apps of account ' || dev.developer_id || ' before registrations', now())
            RETURNING id INTO org;
        INSERT INTO developer_org_members (org_id, account_id, added_at) VALUES (org, dev.developer_id, now());
        INSERT INTO app_id_registrations (app_id, org_id, status, requested_at, decided_at, reason)
            SELECT m.app_id, org,
                   CASE WHEN m.app_id LIKE 'gov.guangde.%' OR m.app_id LIKE 'cn.gov.%'
                        THEN 'pending' ELSE 'approved' END,
                   m.created_at,
                   CASE WHEN m.app_id LIKE 'gov.guangde.%' OR m.app_id LIKE 'cn.gov.%'
                        THEN NULL ELSE now() END,
                   'backfilled by migration 0091 for the app uploaded before registrations'
            FROM miniapps m WHERE m.developer_id = dev.developer_id;
    END LOOP;
END $$;
