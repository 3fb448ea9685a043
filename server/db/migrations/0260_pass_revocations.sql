-- A revoked mini-app pass (a cancelled ticket) goes on the issuer's revocation list terminals sync, by its pass
-- number (8 bytes), so an offline gate refuses it too.
ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check
    CHECK (kind IN ('subject', 'device_certificate', 'app_pass'));
