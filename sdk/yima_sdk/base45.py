"""Base45 (RFC 9285): the text encoding that keeps yima QR payloads in QR alphanumeric mode.

Decoding is on the scan hot path (server and terminals decode thousands of codes per second), so
it avoids a Python loop per character: the text is mapped to digit values with one `bytes.translate`,
and the whole text is read as one little-endian integer whose 24-bit lanes are the triplets (c, d, e)
as c + 256·d + 65536·e. Subtracting 211·d + 63511·e per lane (d and e picked out with a shift and a
mask) leaves c + 45·d + 2025·e, done by CPython's C big-integer code for the whole payload at once.
Every lane's result lies in 0..91124 (17 bits), so no lane borrows from or carries into the next.
"""

from __future__ import annotations

import functools
import sys
from array import array

__all__ = ["ALPHABET", "Base45Error", "decode", "encode"]

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

_INVALID = 0xFF
# ASCII byte -> digit value; every other byte (including lower case, which RFC 9285 does not allow)
# maps to 0xFF so one `in` test finds any invalid character.
_DIGIT_OF = bytes(ALPHABET.index(chr(b)) if chr(b) in ALPHABET else _INVALID for b in range(256))
_CHAR_OF = ALPHABET.encode("ascii")
# The low byte of every 24-bit lane, for texts of up to _LOW_GROUPS triplets (longer ones build their own).
_LOW_GROUPS = 1024
_LOW_BYTES = int.from_bytes(b"\xff\x00\x00" * _LOW_GROUPS, "little")


class Base45Error(ValueError):
    """The text is not valid Base45: a character outside the alphabet, a bad length, or a value overflow."""


def encode(data: bytes) -> str:
    """Encode bytes as Base45 text (two bytes -> three characters, a last odd byte -> two characters)."""
    full = len(data) - len(data) % 2
    pairs = array("H", data[:full])
    if sys.byteorder == "little":
        pairs.byteswap()  # Base45 reads each pair big-endian
    out = b"".join(map(_triplets().__getitem__, pairs))
    if full != len(data):
        d, c = divmod(data[-1], 45)
        out += bytes((_CHAR_OF[c], _CHAR_OF[d]))
    return out.decode("ascii")


@functools.cache
def _triplets() -> tuple[bytes, ...]:
    """The three characters of every 16-bit value, built on first use (~20 ms, ~4 MiB): issuing codes on the
    server encodes thousands of payloads a second, and a table lookup per pair beats arithmetic per pair."""
    chars = _CHAR_OF
    return tuple(bytes((chars[n % 45], chars[n // 45 % 45], chars[n // 2025])) for n in range(65536))


def decode(text: str) -> bytes:
    """Decode Base45 text strictly; raise `Base45Error` on anything RFC 9285 does not allow."""
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise Base45Error("non-ASCII character in Base45 text") from None
    size = len(raw)
    tail = size % 3
    if tail == 1:
        raise Base45Error("Base45 text length leaves a single dangling character")
    digits = raw.translate(_DIGIT_OF)
    if _INVALID in digits:
        raise Base45Error("character outside the Base45 alphabet")
    groups = size // 3
    out = bytearray(2 * groups + (1 if tail else 0))
    if groups:
        width = 3 * groups
        lanes = int.from_bytes(digits[:width] if tail else digits, "little")
        low = _LOW_BYTES if groups <= _LOW_GROUPS else int.from_bytes(b"\xff\x00\x00" * groups, "little")
        values = (lanes - 211 * ((lanes >> 8) & low) - 63511 * ((lanes >> 16) & low)).to_bytes(
            width, "little"
        )
        # A lane above 65535 has a non-zero third byte: the triplet does not encode two bytes.
        if values[2::3].strip(b"\x00"):
            raise Base45Error("Base45 triplet value exceeds 65535")
        out[0 : 2 * groups : 2] = values[1::3]
        out[1 : 2 * groups : 2] = values[0::3]
    if tail:
        value = digits[-2] + 45 * digits[-1]
        if value > 0xFF:
            raise Base45Error("Base45 final pair value exceeds 255")
        out[-1] = value
    return bytes(out)
