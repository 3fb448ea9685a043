-- 一卡通行 offline: a partner county's ride code (its device certificate signed by its issuer key on the trust list)
-- is settled as a ride that county owes, not charged to a one-card here (it has none). Such a ride keeps the
-- partner's issuer and no one-card account; its certificate's offline limits are counted from these rows.
ALTER TABLE onecard_offline_rides
    ADD COLUMN partner_issuer integer,
    ADD CONSTRAINT onecard_offline_rides_partner_no_card
        CHECK (partner_issuer IS NULL OR onecard_account_id IS NULL);
CREATE INDEX onecard_offline_rides_partner_serial ON onecard_offline_rides (certificate_serial)
    WHERE partner_issuer IS NOT NULL AND status = 'settled';
