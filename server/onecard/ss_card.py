"""The social security card number rule we apply, and how the number is shown."""

from __future__ import annotations

import re

from server.wire import ascii_text

_CARD = re.compile(r"[A-Z][0-9]{8}")


class CardNumberError(ValueError):
    pass


def normalise_card_number(text: str) -> str:
    """Validate a third-generation social security card number and return its canonical form.

    Rule applied (docs/onecard.md): the card number (卡号) printed on the card is 9 characters, one Latin capital
    letter followed by 8 digits, e.g. "A12345678". Spaces are ignored and a lower-case letter is accepted and
    upper-cased, because residents type what they read off the card. The social security number
    (社会保障号码) on the same card is the resident's ID number, which the identity domain already holds and
    checks; it is not accepted here.
    """
    value = "".join((ascii_text(text) or "").split()).upper()  # NFKC: a full-width "Ａ１..." is the same card
    if not _CARD.fullmatch(value):
        raise CardNumberError("expected one capital letter and 8 digits, e.g. A12345678")
    return value


def mask_card_number(value: str) -> str:
    """ "A12345678" -> "A******78"."""
    return value[0] + "*" * (len(value) - 3) + value[-2:]
