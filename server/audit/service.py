"""Appending to and verifying the MAC chain.

Each record's hash is an HMAC-SHA256, under a key derived from the master key (which the database never holds),
of its own fields and the previous record's hash. Someone who can write to the database can still change, delete
or reorder records, but cannot compute the hashes that would hide it: `verify_chain` names the first record where
the chain breaks. Deleting the newest records leaves a shorter chain that is intact in itself; signed checkpoints
of the head, kept outside the database (server/audit/checkpoints.py), are what name that truncation.

Records written before migration 0081 carry plain SHA-256 hashes (`mac` 1); they are accepted only before the
first keyed record, so a rewritten record cannot pass by claiming the old format.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from server.audit import repository
from server.audit.checkpoints import Checkpoint

GENESIS = b"\x00" * 32
MAC_PLAIN = 1
MAC_KEYED = 2

_chain_key: bytes | None = None


def use_chain_key(key: bytes) -> None:
    """Set this process's chain key (start-up does, once): every `append` MACs under it.

    Process-wide rather than passed to each of the many `append` calls: one process serves one deployment, and
    a domain appending to the audit log should not need to hold a secret to do so.
    """
    global _chain_key
    _chain_key = key


def _digest(
    key: bytes,
    mac: int,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    details: Any,
    prev: bytes,
) -> bytes:
    body = json.dumps(
        [seq, at.astimezone(UTC).isoformat(timespec="microseconds"), actor, action, target, details],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    if mac == MAC_PLAIN:
        return hashlib.sha256(prev + body).digest()
    return hmac.new(key, prev + body, hashlib.sha256).digest()


async def append(
    conn: asyncpg.Connection, *, actor: str, action: str, target: str, details: dict[str, Any] | None = None
) -> int:
    """Append within the caller's transaction; the record commits or vanishes with the change it describes."""
    if _chain_key is None:
        raise RuntimeError("the audit chain key is not set; start-up calls audit.use_chain_key")
    details = details or {}
    head = await repository.lock_and_last(conn)
    seq = 1 if head is None else head["seq"] + 1
    prev = GENESIS if head is None else bytes(head["hash"])
    at = datetime.now(UTC)  # timestamptz keeps microseconds, so verification recomputes the same bytes
    # jsonb normalises key order and number formats; hash what will be read back.
    details = json.loads(json.dumps(details, sort_keys=True, default=str))
    digest = _digest(_chain_key, MAC_KEYED, seq, at, actor, action, target, details, prev)
    await repository.insert(
        conn,
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        target=target,
        details=details,
        prev_hash=prev,
        hash_=digest,
        mac=MAC_KEYED,
    )
    return seq


@dataclass(frozen=True)
class AuditBreak:
    seq: int
    problem: str  # "changed", "missing", "reordered", "truncated", "rewritten"
    detail: str = ""


async def verify_chain(
    conn: asyncpg.Connection, key: bytes, checkpoints: Iterable[Checkpoint] = ()
) -> tuple[int, AuditBreak | None]:
    """Walk the chain under `key` (DerivedKeys.audit_chain) and hold it against signed checkpoints (already verified):
    returns (records checked, first break or None)."""
    signed = {c.size: c for c in checkpoints}
    prev = GENESIS
    expected_seq = 1
    count = 0
    keyed = False
    # closed before returning: the caller may use the connection at once, and an unclosed cursor would still hold
    # its transaction there until the event loop finalised the generator (a 500 from the verify endpoint)
    async with contextlib.aclosing(repository.iterate(conn)) as rows:
        async for row in rows:
            count += 1
            seq = row["seq"]
            if seq != expected_seq:
                return count, AuditBreak(expected_seq, "missing")
            if bytes(row["prev_hash"]) != prev:
                return count, AuditBreak(seq, "reordered")
            mac = row["mac"]
            if mac not in (MAC_PLAIN, MAC_KEYED) or (mac == MAC_PLAIN and keyed):
                return count, AuditBreak(seq, "changed", "a plain hash after keyed ones")
            keyed = mac == MAC_KEYED
            recomputed = _digest(
                key, mac, seq, row["at"], row["actor"], row["action"], row["target"], row["details"], prev
            )
            if recomputed != bytes(row["hash"]):
                return count, AuditBreak(seq, "changed")
            checkpoint = signed.get(seq)
            if checkpoint is not None and checkpoint.head != recomputed.hex():
                return count, AuditBreak(
                    seq, "rewritten", f"differs from the checkpoint signed at {checkpoint.signed}"
                )
            prev = recomputed
            expected_seq += 1
    if signed and max(signed) > count:
        checkpoint = signed[max(signed)]
        return count, AuditBreak(
            count + 1,
            "truncated",
            f"the checkpoint signed at {checkpoint.signed} covers {checkpoint.size} record(s); the log holds {count}",
        )
    return count, None
