-- A partner county's certificate is named by its issuer and serial: two counties may issue the same serial, and
-- each certificate's offline limits count only its own settled rides.
DROP INDEX onecard_offline_rides_partner_serial;
CREATE INDEX onecard_offline_rides_partner_certificate ON onecard_offline_rides (partner_issuer, certificate_serial)
    WHERE partner_issuer IS NOT NULL AND status = 'settled';
