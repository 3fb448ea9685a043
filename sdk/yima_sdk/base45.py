"""Base45 (RFC 9285): the text encoding that keeps yima QR payloads in QR alphanumeric mode.

Decoding is on the scan hot path (server and terminals decode thousands of codes per second), so
it avoids a Python loop per character: the text is mapped to digit values with one `bytes.translate`,
and the whole text is read as one little-endian integer whose 24-bit lanes are the triplets (c, d, e)
as c + 256·d + 65536·e. Subtracting 211·d + 63511·e per lane (d and e picked out with a shift and a
mask) leaves c + 45·d + 2025·e, done by CPython's C big-integer code for the whole payload at once.
Every lane's result lies in 0..91124 (17 bits), so no lane borrows from or carries into the next.

`decode_many` applies the same arithmetic to a whole group of texts at once: texts whose length is a
multiple of three are concatenated, so their triplets stay aligned, and decoded as one integer.
"""

from __future__ import annotations

import functools
import sys
from array import array
from collections.abc import Sequence

__all__ = ["ALPHABET", "Base45Error", "decode", "decode_joined", "decode_many", "encode"]

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

_INVALID = 0xFF
# ASCII byte -> digit value; every other byte (including lower case, which RFC 9285 does not allow)
# maps to 0xFF so one `in` test finds any invalid character.
_DIGIT_OF = bytes(ALPHABET.index(chr(b)) if chr(b) in ALPHABET else _INVALID for b in range(256))
_CHAR_OF = ALPHABET.encode("ascii")


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
        pairs = _pairs(digits[: 3 * groups] if tail else digits)
        if pairs is None:
            raise Base45Error("Base45 triplet value exceeds 65535")
        out[: 2 * groups] = pairs
    if tail:
        value = digits[-2] + 45 * digits[-1]
        if value > 0xFF:
            raise Base45Error("Base45 final pair value exceeds 255")
        out[-1] = value
    return bytes(out)


def decode_many(texts: Sequence[str]) -> list[bytes | Base45Error]:
    """Decode a group of texts: per text, what `decode` returns or the error it raises.

    The texts whose length is a multiple of three (every yima payload) are decoded together as one
    integer, which costs well under half of decoding them one by one. Should any of them be invalid,
    they are decoded one by one instead, so that each gets its own answer.
    """
    out: list[bytes | Base45Error | None] = [None] * len(texts)
    aligned: list[int] = []
    for i, text in enumerate(texts):
        if len(text) % 3 == 0:
            aligned.append(i)
        else:
            out[i] = _decode_or_error(text)
    if aligned:
        pairs = decode_joined([texts[i] for i in aligned])
        if pairs is None:
            for i in aligned:
                out[i] = _decode_or_error(texts[i])
        else:
            at = 0
            for i in aligned:
                end = at + len(texts[i]) // 3 * 2
                out[i] = pairs[at:end]
                at = end
    return out  # type: ignore[return-value]  # every slot was filled above


def decode_joined(texts: Sequence[str]) -> bytes | None:
    """The bytes of texts whose lengths are multiples of three, decoded together and concatenated; None if any
    of them is not valid Base45 (then `decode` each one to learn which, and why).

    For callers that read a group's bytes in place (`struct.iter_unpack` over fixed-size credentials)
    instead of slicing them apart again. Raises ValueError for a text whose length is not a multiple of three
    (concatenated, the triplets of the texts after it would no longer line up).
    """
    if any(size % 3 for size in set(map(len, texts))):
        raise ValueError("decode_joined takes texts of whole triplets only")
    try:
        digits = "".join(texts).encode("ascii").translate(_DIGIT_OF)
    except UnicodeEncodeError:
        return None
    if _INVALID in digits:
        return None
    return _pairs(digits) if digits else b""


@functools.cache
def _lane_masks(groups: int) -> tuple[int, int]:
    """The low and the high byte of every 24-bit lane of `groups` triplets (a power of two, so only a few are
    ever built; ANDed with a shorter integer, the rest of a mask costs nothing)."""
    return int.from_bytes(b"\xff\x00\x00" * groups, "little"), int.from_bytes(
        b"\x00\x00\xff" * groups, "little"
    )


def _decode_or_error(text: str) -> bytes | Base45Error:
    try:
        return decode(text)
    except Base45Error as exc:
        return exc


def _pairs(digits: bytes) -> bytes | None:
    """The bytes encoded by whole triplets of digit values, or None if a triplet exceeds 65535."""
    width = len(digits)
    groups = width // 3
    lanes = int.from_bytes(digits, "little")
    low, high = _lane_masks(1 << max(10, (groups - 1).bit_length()))
    values = lanes - 211 * ((lanes >> 8) & low) - 63511 * ((lanes >> 16) & low)
    # Every lane lies in 0..91124, so no lane borrows or carries, and one above 65535 has its third byte set:
    # that triplet does not encode two bytes.
    if values & high:
        return None
    lane_bytes = values.to_bytes(width, "little")
    out = bytearray(2 * groups)
    out[0::2] = lane_bytes[1::3]
    out[1::2] = lane_bytes[0::3]
    return bytes(out)
