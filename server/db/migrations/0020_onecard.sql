-- The city one-card: accounts, the double-entry ledger in integer fen, top-up orders, charges, device
-- certificates for offline ride codes and their settled offline rides.

-- Every balance lives in a ledger account. Wallets (one per one-card account) keep a materialised balance,
-- updated in the same transaction as their postings; system accounts (provider clearing, transit fares,
-- mini-app revenue) are derived from their postings so that no single hot row serialises every payment.
CREATE TABLE ledger_accounts (
    id              bigserial PRIMARY KEY,
    code            text NOT NULL UNIQUE,                 -- "wallet:<onecard id>", "system:transit_fares", "app:<id>"
    kind            text NOT NULL CHECK (kind IN ('wallet', 'system')),
    balance_fen     bigint,
    min_balance_fen bigint,                               -- the offline floor: the lowest a wallet may ever go
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'wallet') = (balance_fen IS NOT NULL AND min_balance_fen IS NOT NULL)),
    CHECK (balance_fen >= min_balance_fen)                -- last line of defence; services check the floor first
);

-- One business event, one journal: (kind, reference) is unique, so a retried event cannot post twice.
CREATE TABLE ledger_journals (
    id         bigserial PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('topup', 'charge', 'refund', 'offline_ride')),
    reference  text NOT NULL,
    posted_at  timestamptz NOT NULL,
    UNIQUE (kind, reference)
);

CREATE TABLE ledger_postings (
    journal_id        bigint NOT NULL REFERENCES ledger_journals (id),
    ledger_account_id bigint NOT NULL REFERENCES ledger_accounts (id),
    amount_fen        bigint NOT NULL CHECK (amount_fen <> 0),   -- + raises the account's balance, - lowers it
    posted_at         timestamptz NOT NULL,                      -- copy of the journal's, for statements by month
    PRIMARY KEY (journal_id, ledger_account_id)
);
CREATE INDEX ledger_postings_account_time ON ledger_postings (ledger_account_id, posted_at);

-- A journal's postings are written by one statement; this checks, per statement, that each journal sums to zero.
CREATE FUNCTION ledger_postings_balance() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad bigint;
BEGIN
    SELECT journal_id INTO bad FROM new_postings GROUP BY journal_id HAVING sum(amount_fen) <> 0 LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'ledger journal % does not sum to zero', bad USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_postings_sum_to_zero AFTER INSERT ON ledger_postings
    REFERENCING NEW TABLE AS new_postings FOR EACH STATEMENT EXECUTE FUNCTION ledger_postings_balance();

-- Postings and journals are history: corrections are new journals, never edits.
CREATE FUNCTION ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;
CREATE TRIGGER ledger_postings_append_only BEFORE UPDATE OR DELETE ON ledger_postings
    FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only();
CREATE TRIGGER ledger_journals_append_only BEFORE UPDATE OR DELETE ON ledger_journals
    FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only();

-- One one-card account per resident, one per social security card.
CREATE TABLE onecard_accounts (
    id                bigserial PRIMARY KEY,
    owner_account_id  bigint NOT NULL UNIQUE REFERENCES accounts (id),
    ss_card_enc       bytea NOT NULL,                    -- AES-GCM, field "ss_card_number"
    ss_card_index     bytea NOT NULL UNIQUE,             -- keyed blind index: one card, one account
    account_ref       bytea NOT NULL UNIQUE,             -- 16-byte pseudonymous reference carried in certificates
    wallet_id         bigint NOT NULL UNIQUE REFERENCES ledger_accounts (id),
    ecard_status      text NOT NULL DEFAULT 'active' CHECK (ecard_status IN ('active', 'suspended')),
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE onecard_topups (
    order_no           text PRIMARY KEY,
    onecard_account_id bigint NOT NULL REFERENCES onecard_accounts (id),
    amount_fen         bigint NOT NULL CHECK (amount_fen > 0),
    state              text NOT NULL CHECK (state IN ('pending', 'paying', 'paid', 'closed', 'expired')),
    provider           text NOT NULL,
    prepay_id          text,
    pay_url            text,
    provider_txn_id    text,
    journal_id         bigint UNIQUE REFERENCES ledger_journals (id),   -- set once, when credited
    anomaly            text,                                            -- e.g. amount_mismatch, closed_after_paid
    created_at         timestamptz NOT NULL,
    paid_at            timestamptz,
    credited_at        timestamptz,
    updated_at         timestamptz NOT NULL
);
CREATE INDEX onecard_topups_account ON onecard_topups (onecard_account_id, created_at DESC);
CREATE INDEX onecard_topups_credited ON onecard_topups (credited_at) WHERE credited_at IS NOT NULL;
CREATE INDEX onecard_topups_pending ON onecard_topups (created_at) WHERE state IN ('pending', 'paying');

-- Every provider notification that passed the signature check, with what we did with it.
CREATE TABLE onecard_payment_notifications (
    id          bigserial PRIMARY KEY,
    notify_id   text NOT NULL,
    order_no    text NOT NULL,
    state       text NOT NULL,
    amount_fen  bigint NOT NULL,
    outcome     text NOT NULL,
    received_at timestamptz NOT NULL
);
CREATE INDEX onecard_payment_notifications_order ON onecard_payment_notifications (order_no);

-- Online charges by mini-apps, with what has been refunded of each.
CREATE TABLE onecard_charges (
    id                 bigserial PRIMARY KEY,
    onecard_account_id bigint NOT NULL REFERENCES onecard_accounts (id),
    amount_fen         bigint NOT NULL CHECK (amount_fen > 0),
    refunded_fen       bigint NOT NULL DEFAULT 0 CHECK (refunded_fen >= 0 AND refunded_fen <= amount_fen),
    reason             text NOT NULL,
    app_id             text,
    journal_id         bigint NOT NULL REFERENCES ledger_journals (id),
    created_at         timestamptz NOT NULL
);
CREATE INDEX onecard_charges_account ON onecard_charges (onecard_account_id, created_at DESC);

-- Device certificates: a phone key certified for offline ride codes, with the offline use it has settled.
CREATE TABLE onecard_device_certificates (
    id                     bigserial PRIMARY KEY,
    serial                 bytea NOT NULL UNIQUE,        -- first 8 bytes of SHA-256 over the signed body
    onecard_account_id     bigint NOT NULL REFERENCES onecard_accounts (id),
    issuer                 integer NOT NULL,
    key_id                 text NOT NULL,
    device_public_key      bytea NOT NULL,
    issued_at              timestamptz NOT NULL,
    expires_at             timestamptz NOT NULL,
    max_offline_uses       integer NOT NULL,
    max_offline_amount_fen bigint NOT NULL,
    offline_uses           integer NOT NULL DEFAULT 0,
    offline_amount_fen     bigint NOT NULL DEFAULT 0,
    revoked_at             timestamptz,
    revoke_reason          text,
    CHECK (offline_uses <= max_offline_uses AND offline_amount_fen <= max_offline_amount_fen)
);
CREATE INDEX onecard_device_certificates_account ON onecard_device_certificates (onecard_account_id);

-- Offline ride records uploaded by terminals, settled or rejected exactly once per (terminal, record).
CREATE TABLE onecard_offline_rides (
    terminal_id        text NOT NULL,
    record_id          text NOT NULL,
    certificate_serial bytea NOT NULL,
    onecard_account_id bigint,
    amount_fen         bigint NOT NULL,
    scanned_at         timestamptz NOT NULL,
    status             text NOT NULL CHECK (status IN ('settled', 'rejected')),
    reason             text,
    journal_id         bigint REFERENCES ledger_journals (id),
    settled_at         timestamptz NOT NULL,
    PRIMARY KEY (terminal_id, record_id)
);

-- The system accounts every deployment has.
INSERT INTO ledger_accounts (code, kind) VALUES
    ('system:provider_clearing', 'system'),
    ('system:transit_fares', 'system');
