-- an app may withdraw a charge the resident has not confirmed yet (payments.cancel): it ends 'cancelled'
ALTER TABLE miniapp_payments DROP CONSTRAINT miniapp_payments_status_check;
ALTER TABLE miniapp_payments ADD CONSTRAINT miniapp_payments_status_check
    CHECK (status IN ('pending_confirmation', 'succeeded', 'declined', 'failed', 'cancelled'));
