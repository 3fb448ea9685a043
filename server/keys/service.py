"""The key store: the active signing key per purpose, every key still valid for verification, rotation.

Key changes take effect at once on every worker of every node. `rotate` and `retire` commit (with their audit
record), then announce the change on the cache's pub/sub channel and wait until every worker that received it
confirms: a worker marks a retired key unusable before anything else, reloads from PostgreSQL, then confirms. So
when `retire` returns, no subscribed worker signs with that key. A worker whose subscription is down (Redis
unreachable) reloads every `refresh_s` instead, and reloads everything when it subscribes again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from server import audit
from server.cache import Cache, follow
from server.db import Database
from server.errors import CacheUnavailable
from server.keys import repository
from server.observability import outage_log
from server.security import FieldCipher

log = logging.getLogger("yima.keys")

CHANNEL = "keys"
ROOT_PURPOSE = "trust_root"
"""The trust root: signs the trust list, terminal documents and audit checkpoints; every domain that signs or
verifies with it imports it from here."""
CONFIRM_TIMEOUT_S = 5.0
"""How long `rotate`/`retire` wait for every worker's confirmation before saying which did not answer."""


class _KeyChange(msgspec.Struct, frozen=True):
    """The announcement on CHANNEL: which purpose changed, the key withdrawn (if any), where to confirm."""

    purpose: str
    retired: str = ""
    confirm: str = ""


_encode_change = msgspec.json.Encoder().encode
_decode_change = msgspec.json.Decoder(_KeyChange).decode

ALG_ED25519 = "Ed25519"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    purpose: str
    alg: str
    public_key: Ed25519PublicKey
    public_raw: bytes
    created_at: datetime
    retired_at: datetime | None
    _private: Ed25519PrivateKey | None

    @property
    def private_key(self) -> Ed25519PrivateKey:
        if self._private is None:
            raise RuntimeError(f"key {self.kid} has no private half loaded")
        return self._private

    @property
    def active(self) -> bool:
        return self.retired_at is None


def decode_key(row: asyncpg.Record, cipher: FieldCipher) -> SigningKey:
    """A stored key, its private half decrypted: a row not written under our master key fails here."""
    private = Ed25519PrivateKey.from_private_bytes(
        base64.b64decode(cipher.decrypt("signing_key/" + row["kid"], row["private_key_enc"]))
    )
    if private.public_key().public_bytes_raw() != bytes(row["public_key"]):
        raise ValueError(f"key {row['kid']}: the public half does not match the private one")
    return SigningKey(
        kid=row["kid"],
        purpose=row["purpose"],
        alg=row["alg"],
        public_key=Ed25519PublicKey.from_public_bytes(bytes(row["public_key"])),
        public_raw=bytes(row["public_key"]),
        created_at=row["created_at"],
        retired_at=row["retired_at"],
        _private=private,
    )


@dataclass(frozen=True)
class KeyChange:
    """What `rotate` or `retire` did, and how many workers confirmed they took it in."""

    key: SigningKey
    workers_told: int
    workers_confirmed: int

    @property
    def everywhere(self) -> bool:
        return self.workers_confirmed >= self.workers_told


class KeyStore:
    """Loads keys from the database and holds them in memory; changes arrive by pub/sub (see the module doc)."""

    def __init__(self, db: Database, cipher: FieldCipher, *, refresh_s: float = 30.0) -> None:
        self._db = db
        self._cipher = cipher
        self._refresh_s = refresh_s
        self._keys: dict[str, list[SigningKey]] = {}
        self._loaded_at: dict[str, float] = {}
        self._cache: Cache | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, cache: Cache) -> None:
        """Follow key changes announced by any worker, and reload periodically as the backstop."""
        self._cache = cache
        self._tasks = [
            asyncio.create_task(
                follow(cache, CHANNEL, self._on_change, on_subscribed=self._reload_all), name="keys-listener"
            ),
            asyncio.create_task(self._poll(), name="keys-refresh"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _decode(self, row: asyncpg.Record) -> SigningKey:
        return decode_key(row, self._cipher)

    async def keys(self, purpose: str, *, fresh: bool = False) -> list[SigningKey]:
        """All keys of a purpose, oldest first; creates the first one if there is none.

        Once loaded, the list in memory is served: changes arrive by pub/sub and the periodic reload, never on
        the caller's time. Callers often hold a pooled connection already, and must never wait for a second one
        (pool exhaustion deadlock).
        """
        cached = self._keys.get(purpose)
        if cached and not fresh:
            return cached
        return await self._load(purpose)

    async def _load(self, purpose: str) -> list[SigningKey]:
        now = time.monotonic()
        async with self._db.connection() as conn:
            rows = await repository.list_keys(conn, purpose)
            if not any(r["retired_at"] is None for r in rows):
                async with conn.transaction():
                    await repository.lock_purpose(conn, purpose)
                    rows = await repository.list_keys(conn, purpose)
                    if not any(r["retired_at"] is None for r in rows):
                        rows = [*rows, await self._create(conn, purpose, actor="system")]
        self._keys[purpose] = [self._decode(r) for r in rows]
        self._loaded_at[purpose] = now
        return self._keys[purpose]

    async def active(self, purpose: str) -> SigningKey:
        """The newest key that is not retired: the one that signs."""
        usable = [k for k in await self.keys(purpose) if k.active]
        if not usable:  # the active key was just retired: load (or make) its successor
            usable = [k for k in await self._load(purpose) if k.active]
        return usable[-1]

    async def find(self, purpose: str, kid: str) -> SigningKey | None:
        """The key with this id; an unknown id triggers one reload (rate-limited) in case another worker rotated."""
        for key in await self.keys(purpose):
            if key.kid == kid:
                return key
        if time.monotonic() - self._loaded_at.get(purpose, 0.0) < 1.0:
            return None  # just reloaded: an unknown kid is not worth another query (forged tokens are cheap)
        for key in await self.keys(purpose, fresh=True):
            if key.kid == kid:
                return key
        return None

    async def _create(self, conn: asyncpg.Connection, purpose: str, *, actor: str) -> asyncpg.Record:
        private = Ed25519PrivateKey.generate()
        kid = secrets.token_hex(4)
        raw_private = private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        await audit.append(
            conn, actor=actor, action="key.created", target=f"key:{kid}", details={"purpose": purpose}
        )
        return await repository.insert_key(
            conn,
            kid=kid,
            purpose=purpose,
            alg=ALG_ED25519,
            public_key=private.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            ),
            private_key_enc=self._cipher.encrypt(
                "signing_key/" + kid, base64.b64encode(raw_private).decode()
            ),
        )

    async def rotate(
        self, purpose: str, *, actor: str, before_announce: Callable[[], Awaitable[None]] | None = None
    ) -> KeyChange:
        """A new active key, signing on every worker when this returns; older keys stay for verification.

        `before_announce` runs once the key is stored and before any other worker signs with it: the trust list
        must list a key before codes signed by it reach a verifier.
        """
        async with self._db.transaction() as conn:
            await repository.lock_purpose(conn, purpose)
            row = await self._create(conn, purpose, actor=actor)
        await self.keys(purpose, fresh=True)
        if before_announce is not None:
            await before_announce()
        return await self._announce(self._decode(row), _KeyChange(purpose))

    async def retire(self, kid: str, *, actor: str) -> KeyChange | None:
        """Withdraw a key: when this returns, no worker that confirmed signs with it (see the module doc)."""
        async with self._db.transaction() as conn:
            row = await repository.retire_key(conn, kid, datetime.now(UTC))
            if row is not None:
                await audit.append(
                    conn,
                    actor=actor,
                    action="key.retired",
                    target=f"key:{kid}",
                    details={"purpose": row["purpose"]},
                )
        if row is None:
            return None
        self._withdraw(row["purpose"], kid)
        await self.keys(row["purpose"], fresh=True)
        return await self._announce(self._decode(row), _KeyChange(row["purpose"], retired=kid))

    async def _announce(self, key: SigningKey, change: _KeyChange) -> KeyChange:
        if self._cache is None:
            return KeyChange(key, 0, 0)
        confirm = f"keys:confirm:{secrets.token_hex(8)}"
        try:
            told = await self._cache.publish(
                CHANNEL, _encode_change(msgspec.structs.replace(change, confirm=confirm))
            )
            deadline = time.monotonic() + CONFIRM_TIMEOUT_S
            confirmed = 0
            while True:
                confirmed = int(await self._cache.get(confirm) or 0)
                if confirmed >= told or time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0.01)
        except CacheUnavailable:
            # Committed already: workers without a subscription reload every refresh_s and on resubscribing.
            log.warning(
                "key change not announced: the cache is unreachable", extra={"purpose": change.purpose}
            )
            return KeyChange(key, 0, 0)
        return KeyChange(key, told, confirmed)

    def _withdraw(self, purpose: str, kid: str) -> None:
        """Mark a retired key unusable in memory at once, before any reload (which needs a database round trip)."""
        now = datetime.now(UTC)
        self._keys[purpose] = [
            dataclasses.replace(k, retired_at=now) if k.kid == kid and k.retired_at is None else k
            for k in self._keys.get(purpose, [])
        ]

    async def _on_change(self, message: bytes) -> None:
        change = _decode_change(message)
        if change.retired:
            self._withdraw(change.purpose, change.retired)
        if change.purpose in self._keys:
            await self._load(change.purpose)
        if change.confirm and self._cache is not None:
            await self._cache.incr(change.confirm, 60)

    async def _reload_all(self) -> None:
        for purpose in list(self._keys):
            await self._load(purpose)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self._reload_all()
            except Exception as exc:
                outage_log.failed("database", f"keys reload: {type(exc).__name__}")

    async def list_all(self) -> list[SigningKey]:
        async with self._db.connection() as conn:
            rows = await repository.list_keys(conn)
        return [self._decode(r) for r in rows]
