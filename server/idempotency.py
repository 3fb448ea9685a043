"""Idempotency keys for retried writes, over the `idempotency_keys` table; usable by any domain.

Same scope + key + same request -> the stored result, without running the operation again.
Same scope + key + a different request -> 409 `idempotency.key_reused`.

How it stays exactly-once under concurrency: the key row is inserted in the caller's transaction *before* the
operation runs. A second request with the same key blocks on that uncommitted row (the primary key) until the
first transaction ends: if it committed, the second reads the stored result; if it rolled back (the operation
failed), the second runs the operation itself. So only successful results are stored; a refused request leaves
no trace and may be retried with the same key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import msgspec

from server.errors import Conflict

__all__ = ["IdempotencyKeyReused", "Replayed", "request_hash", "run_once"]

T = TypeVar("T")

_canonical = msgspec.json.Encoder(order="sorted")


class IdempotencyKeyReused(Conflict):
    code, title = "idempotency.key_reused", "This idempotency key was already used for a different request"


@dataclass(frozen=True)
class Replayed:
    """Whether `run_once` ran the operation (False) or answered from the stored result (True)."""

    replayed: bool


def request_hash(request: Any) -> bytes:
    """SHA-256 over a canonical JSON form (sorted keys) of what identifies the request."""
    return hashlib.sha256(_canonical.encode(request)).digest()


async def run_once(
    conn: asyncpg.Connection,
    *,
    scope: str,
    key: str,
    request: Any,
    result_type: type[T],
    operation: Callable[[], Awaitable[T]],
    status: int = 200,
) -> tuple[T, Replayed]:
    """Run `operation` once per (scope, key) inside the caller's transaction, or return its stored result.

    `request` is whatever identifies the request (hashed canonically); `result_type` is how the stored JSON is
    read back (a msgspec Struct, dataclass or builtin type). Raises `IdempotencyKeyReused`.
    """
    digest = request_hash(request)
    # A savepoint around claim + operation: if the operation raises, the claim goes with it even when the caller
    # catches the error and commits the rest of its transaction.
    async with conn.transaction():
        return await _run_once(conn, scope, key, digest, result_type, operation, status)


async def _run_once(
    conn: asyncpg.Connection,
    scope: str,
    key: str,
    digest: bytes,
    result_type: type[T],
    operation: Callable[[], Awaitable[T]],
    status: int,
) -> tuple[T, Replayed]:
    claimed = await conn.fetchval(
        """INSERT INTO idempotency_keys (scope, key, request_hash, status, response)
           VALUES ($1, $2, $3, 0, 'null'::jsonb) ON CONFLICT (scope, key) DO NOTHING RETURNING true""",
        scope,
        key,
        digest,
    )
    if not claimed:
        row = await conn.fetchrow(
            "SELECT request_hash, status, response FROM idempotency_keys WHERE scope = $1 AND key = $2",
            scope,
            key,
        )
        if row is None:  # pragma: no cover - the row existed a moment ago and rows are never deleted here
            raise IdempotencyKeyReused("The key is being cleaned up; use a new key")
        if bytes(row["request_hash"]) != digest:
            raise IdempotencyKeyReused()
        return msgspec.convert(row["response"], result_type), Replayed(True)
    result = await operation()
    await conn.execute(
        "UPDATE idempotency_keys SET status = $3, response = $4 WHERE scope = $1 AND key = $2",
        scope,
        key,
        status,
        msgspec.to_builtins(result),
    )
    return result, Replayed(False)
