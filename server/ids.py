"""Identifiers for high-rate records and requests, made without a system call each.

`uuid.uuid4()` and `secrets.token_hex()` read the kernel's random source on every call: a system call per scan
and per request on the hottest paths. Scan ids and request ids need to be unique, not secret (access to a scan is
decided by who asks, never by knowing its id), so they come from a random per-process seed plus a counter.

`uuid7()` follows RFC 9562's version 7 layout: a 48-bit Unix millisecond timestamp, then the version, then 74
bits that here hold the process seed and a counter ("monotonic random"). Ids made later sort later, so a table
keyed by them appends to its index instead of writing all over it as random UUIDs do.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid

import msgspec

_seed = int.from_bytes(os.urandom(8), "big")
_counter = itertools.count(int.from_bytes(os.urandom(2), "big"))


def _reseed() -> None:
    """A forked child must not repeat its parent's sequence."""
    global _seed, _counter
    _seed = int.from_bytes(os.urandom(8), "big")
    _counter = itertools.count(int.from_bytes(os.urandom(2), "big"))


os.register_at_fork(after_in_child=_reseed)

_new = object.__new__
_set = object.__setattr__
_UNKNOWN = uuid.SafeUUID.unknown

_VERSION_7 = 0x7 << 76
_VARIANT = 0b10 << 62
_MASK_62 = (1 << 62) - 1


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (version 7), unique across processes and calls."""
    n = next(_counter)
    ms = time.time_ns() // 1_000_000
    # rand_a (12 bits): the low bits of the counter; rand_b (62 bits): the seed mixed with the counter.
    rand_a = n & 0xFFF
    rand_b = (_seed + n) & _MASK_62
    # What `uuid.UUID(int=...)` ends with, without its argument checks (the value is 128 bits by construction):
    # one per scan, and the checks were a third of the cost of making a scan's id.
    made = _new(uuid.UUID)
    _set(made, "int", (ms << 80) | _VERSION_7 | (rand_a << 64) | _VARIANT | rand_b)
    _set(made, "is_safe", _UNKNOWN)
    return made


def uuid_text(value: uuid.UUID) -> str:
    """`str(value)`, made in C by msgspec: the same canonical form at under half the cost of `UUID.__str__`,
    whose Python formatting was ~8% of the online scan pipeline's own instructions (tests/test_ids.py)."""
    text: str = msgspec.to_builtins(value)
    return text


def request_id() -> str:
    """16 hex digits, unique per process and call (the seed makes them unique across processes)."""
    return f"{(_seed + next(_counter)) & 0xFFFFFFFFFFFFFFFF:016x}"
