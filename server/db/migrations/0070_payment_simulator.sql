-- The development payment simulator's orders. `yima dev` and the `yima` commands run against the same embedded
-- database in separate processes; kept here, the simulator is one provider for both (`yima onecard reconcile`
-- reads the bill the server's payments produced). Only development mode writes it; production never does.
CREATE TABLE payment_simulator_orders (
    order_no        text PRIMARY KEY,
    amount_fen      bigint NOT NULL,
    description     text NOT NULL,
    notify_url      text NOT NULL,
    prepay_id       text NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL,
    state           text NOT NULL,
    provider_txn_id text,
    paid_at         timestamptz
);
