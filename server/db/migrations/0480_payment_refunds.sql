-- What a resident's payment list says of refunds (GET /v1/me/payments): the total refunded of each mini-app
-- payment, and each refund its app gave (`payments.refund`), written in the refund's transaction. The money itself
-- moves on the one-card (onecard_charges.refunded_fen, a `refund` journal); these rows only tell the resident.
ALTER TABLE miniapp_payments ADD COLUMN refunded_fen integer NOT NULL DEFAULT 0;
ALTER TABLE miniapp_payments ADD CONSTRAINT miniapp_payments_refunded_fen_check
    CHECK (refunded_fen BETWEEN 0 AND amount_fen);

CREATE TABLE miniapp_payment_refunds (
    id              bigserial PRIMARY KEY,
    payment_id      bigint NOT NULL REFERENCES miniapp_payments (id),
    amount_fen      integer NOT NULL CHECK (amount_fen > 0),
    reason          text,                 -- the app's words to the resident; NULL for refunds from before 0480
    refunded_at     timestamptz NOT NULL,
    idempotency_key text NOT NULL,        -- the app's, so a retried refund is listed once
    UNIQUE (payment_id, idempotency_key)
);
CREATE INDEX miniapp_payment_refunds_payment ON miniapp_payment_refunds (payment_id, id);

-- Refunds given before this migration: the totals from the one-card's charges, and each refund from the answer
-- the one-card stored for its idempotency key (amount and time; the reason was never kept).
UPDATE miniapp_payments p SET refunded_fen = c.refunded_fen
    FROM onecard_charges c WHERE c.id = p.charge_id AND c.refunded_fen > 0;
INSERT INTO miniapp_payment_refunds (payment_id, amount_fen, reason, refunded_at, idempotency_key)
SELECT p.id, (k.response ->> 'amount_fen')::integer, NULL, k.created_at, substr(k.key, length('miniapp:') + 1)
    FROM miniapp_payments p
    JOIN idempotency_keys k ON k.scope = 'onecard.refund:' || p.charge_id AND k.key LIKE 'miniapp:%'
    WHERE p.charge_id IS NOT NULL AND k.status = 200 AND (k.response ->> 'amount_fen') IS NOT NULL
    ORDER BY k.created_at
ON CONFLICT DO NOTHING;
