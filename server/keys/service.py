"""The key store: the active signing key per purpose, every key still valid for verification, rotation."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from server.db import Database
from server.keys import repository
from server.security import FieldCipher

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


class KeyStore:
    """Loads keys from the database and caches them; other workers see a rotation within `refresh_s`."""

    def __init__(self, db: Database, cipher: FieldCipher, *, refresh_s: float = 30.0) -> None:
        self._db = db
        self._cipher = cipher
        self._refresh_s = refresh_s
        self._keys: dict[str, list[SigningKey]] = {}
        self._loaded_at: dict[str, float] = {}
        self._refreshing: set[str] = set()
        self._tasks: set[asyncio.Task[list[SigningKey]]] = set()

    def _decode(self, row: asyncpg.Record) -> SigningKey:
        private = Ed25519PrivateKey.from_private_bytes(
            base64.b64decode(self._cipher.decrypt("signing_key/" + row["kid"], row["private_key_enc"]))
        )
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

    async def keys(self, purpose: str, *, fresh: bool = False) -> list[SigningKey]:
        """All keys of a purpose, oldest first; creates the first one if there is none.

        Once loaded, a stale list is refreshed in the background and the cached one served meanwhile: callers
        often hold a pooled connection already, and must never wait for a second one (pool exhaustion deadlock).
        """
        cached = self._keys.get(purpose)
        if cached and not fresh:
            if (
                time.monotonic() - self._loaded_at.get(purpose, 0.0) > self._refresh_s
                and purpose not in self._refreshing
            ):
                self._refreshing.add(purpose)
                task = asyncio.create_task(self._load(purpose))
                task.add_done_callback(lambda _t: self._refreshing.discard(purpose))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
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
                        rows = [*rows, await self._create(conn, purpose)]
        self._keys[purpose] = [self._decode(r) for r in rows]
        self._loaded_at[purpose] = now
        return self._keys[purpose]

    async def active(self, purpose: str) -> SigningKey:
        """The newest key that is not retired: the one that signs."""
        return [k for k in await self.keys(purpose) if k.active][-1]

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

    async def _create(self, conn: asyncpg.Connection, purpose: str) -> asyncpg.Record:
        private = Ed25519PrivateKey.generate()
        kid = secrets.token_hex(4)
        raw_private = private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
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

    async def rotate(self, purpose: str) -> SigningKey:
        """A new active key; older keys stay for verification until retired."""
        async with self._db.transaction() as conn:
            await repository.lock_purpose(conn, purpose)
            row = await self._create(conn, purpose)
        await self.keys(purpose, fresh=True)
        return self._decode(row)

    async def retire(self, kid: str) -> SigningKey | None:
        async with self._db.transaction() as conn:
            row = await repository.retire_key(conn, kid, datetime.now(UTC))
        if row is None:
            return None
        await self.keys(row["purpose"], fresh=True)
        return self._decode(row)

    async def list_all(self) -> list[SigningKey]:
        async with self._db.connection() as conn:
            rows = await repository.list_keys(conn)
        return [self._decode(r) for r in rows]
