-- The card issuer's record: which social security card was issued to which identity (keyed blind indexes only).
-- A one-card links only the card issued to the resident's verified ID number, so nobody links another person's
-- card, and nobody learns from the answer whether a number is someone's card (issue 16, point 11).
CREATE TABLE issued_ss_cards (
    id_number_index bytea PRIMARY KEY,
    card_index      bytea NOT NULL,
    imported_at     timestamptz NOT NULL
);
