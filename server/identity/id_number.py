"""The 18-character resident identity number (GB 11643-1999): check digit, birth date, sex."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from server.wire import ascii_text

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_SHAPE = re.compile(r"[0-9]{17}[0-9X]")
# First two digits: provinces, autonomous regions and municipalities (GB/T 2260), plus 71/81/82.
_PROVINCES = frozenset(
    {
        11,
        12,
        13,
        14,
        15,
        21,
        22,
        23,
        31,
        32,
        33,
        34,
        35,
        36,
        37,
        41,
        42,
        43,
        44,
        45,
        46,
        50,
        51,
        52,
        53,
        54,
        61,
        62,
        63,
        64,
        65,
        71,
        81,
        82,
    }
)


class IdNumberError(ValueError):
    pass


@dataclass(frozen=True)
class IdNumber:
    value: str
    birth_date: date
    sex: str  # "M" or "F"

    @property
    def masked(self) -> str:
        return mask_id_number(self.value)


def check_digit(first17: str) -> str:
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def parse_id_number(raw: str, *, today: date | None = None) -> IdNumber:
    # NFKC first: "３41822..." is the same person's number as "341822...", never a second identity.
    value = (ascii_text(raw) or "").strip().upper()
    if not _SHAPE.fullmatch(value):
        raise IdNumberError("must be 17 digits followed by a digit or X")
    if int(value[:2]) not in _PROVINCES:
        raise IdNumberError("the region code is not a valid province")
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise IdNumberError("the birth date is not a real date") from None
    today = today or date.today()
    if born > today or born.year < 1900:
        raise IdNumberError("the birth date is out of range")
    if check_digit(value[:17]) != value[17]:
        raise IdNumberError("the check digit does not match")
    return IdNumber(value=value, birth_date=born, sex="M" if int(value[16]) % 2 else "F")


def mask_id_number(value: str) -> str:
    """Only the last 4 characters remain: the first 4 (region) with the last 4 and the birth date left two
    candidates for the whole number, since the check digit is shown too."""
    return "*" * (len(value) - 4) + value[-4:]


def mask_name(name: str) -> str:
    return name[:1] + "*" * max(1, len(name) - 1)


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:]
