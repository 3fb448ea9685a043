-- A partner county's key never signs a mini-app pass: our apps issue passes, and a pass names no issuer, so a
-- partner entry for `app_pass` on the trust list left terminals with two issuers holding pass keys (they then
-- admit no pass at all). The operator API offers partners only `ankang_code` and `device_certificate`; this
-- keeps a row written by hand from holding `app_pass` too, taking it from any row that holds it already.
UPDATE partner_issuer_keys SET credential_types = array_remove(credential_types, 'app_pass')
    WHERE 'app_pass' = ANY (credential_types);
ALTER TABLE partner_issuer_keys ADD CONSTRAINT partner_issuer_keys_no_app_pass
    CHECK (NOT ('app_pass' = ANY (credential_types)));
