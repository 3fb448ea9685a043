"""Appending to and verifying the hash chain.

Each record's hash covers its own fields and the previous record's hash, so changing, deleting or reordering any
record breaks every hash after it; `verify_chain` names the first record where that happens.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from server.audit import repository

GENESIS = b"\x00" * 32


def _digest(seq: int, at: datetime, actor: str, action: str, target: str, details: Any, prev: bytes) -> bytes:
    body = json.dumps(
        [seq, at.astimezone(UTC).isoformat(timespec="microseconds"), actor, action, target, details],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(prev + body.encode()).digest()


async def append(
    conn: asyncpg.Connection, *, actor: str, action: str, target: str, details: dict[str, Any] | None = None
) -> int:
    """Append within the caller's transaction; the record commits or vanishes with the change it describes."""
    details = details or {}
    head = await repository.lock_and_last(conn)
    seq = 1 if head is None else head["seq"] + 1
    prev = GENESIS if head is None else bytes(head["hash"])
    at = datetime.now(UTC)  # timestamptz keeps microseconds, so verification recomputes the same bytes
    # jsonb normalises key order and number formats; hash what will be read back.
    details = json.loads(json.dumps(details, sort_keys=True, default=str))
    digest = _digest(seq, at, actor, action, target, details, prev)
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
    )
    return seq


@dataclass(frozen=True)
class AuditBreak:
    seq: int
    problem: str  # "changed", "missing", "reordered"


async def verify_chain(conn: asyncpg.Connection) -> tuple[int, AuditBreak | None]:
    """Walk the chain; returns (records checked, first break or None)."""
    prev = GENESIS
    expected_seq = 1
    count = 0
    async for row in repository.iterate(conn):
        count += 1
        if row["seq"] != expected_seq:
            return count, AuditBreak(expected_seq, "missing")
        if bytes(row["prev_hash"]) != prev:
            return count, AuditBreak(row["seq"], "reordered")
        recomputed = _digest(
            row["seq"], row["at"], row["actor"], row["action"], row["target"], row["details"], prev
        )
        if recomputed != bytes(row["hash"]):
            return count, AuditBreak(row["seq"], "changed")
        prev = bytes(row["hash"])
        expected_seq += 1
    return count, None
