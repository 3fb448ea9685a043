"""The trust list: which issuer keys (ours and partner counties') terminals and this server accept.

Published as a root-signed envelope (yima_sdk.trust), one new version whenever the set of keys changes. Every
worker holds the newest version and a `Verifier` built on it in memory; the scan path never touches the database
for keys. Workers learn of a new version by pub/sub, by a periodic check, and at once when a scan names a key
they do not know yet (rate-limited, so unknown keys cannot flood the database).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from yima_sdk.codes import ALG_ED25519, Verifier, public_key_valid
from yima_sdk.trust import TrustEntry, TrustList, build_trust_list

from server import audit
from server.core import Core
from server.credentials import errors, repository
from server.keys.service import ROOT_PURPOSE, SigningKey

log = logging.getLogger("yima.credentials.trust_list")

ISSUER_PURPOSE = "issuer"
PASS_PURPOSE = "miniapp-pass"  # noqa: S105 - a key purpose, not a secret
"""The platform's keys that sign mini-app passes (server/platform/runtime/capabilities.py): published as `app_pass`
entries, so that terminals verify tickets offline."""
PASS_CREDENTIAL_TYPES = frozenset({"app_pass"})
CHANNEL = "credentials"
"""One pub/sub channel for every credentials change: b"trust_list", b"status:<account>", b"status:*", b"revocations"."""
OWN_CREDENTIAL_TYPES = frozenset({"ankang_code", "device_certificate"})
_KEY_SLACK_S = 300
"""Around our own keys' windows: codes are stamped with the start of their refresh period, and a worker may sign
with a rotated-out key until its key cache refreshes."""
_OPEN_ENDED_S = 10 * 365 * 86400
_MAX_U32 = 0xFFFFFFFF


def own_entries(issuer: int, keys: list[SigningKey]) -> list[TrustEntry]:
    """Entries for our issuer keys: a key is trusted from its creation until its successor took over (plus slack);
    a retired key is withdrawn, so everything it signed is refused."""
    ordered = sorted(keys, key=lambda k: (k.created_at, k.kid))
    entries = []
    for i, key in enumerate(ordered):
        if key.retired_at is not None:
            continue
        start = int(key.created_at.timestamp())
        successor = ordered[i + 1] if i + 1 < len(ordered) else None
        end = int(successor.created_at.timestamp()) + _KEY_SLACK_S if successor else start + _OPEN_ENDED_S
        entries.append(
            TrustEntry(
                issuer=issuer,
                key_id=bytes.fromhex(key.kid),
                alg=ALG_ED25519,
                public_key=key.public_raw,
                credential_types=OWN_CREDENTIAL_TYPES,
                not_before=max(0, start - _KEY_SLACK_S),
                not_after=min(_MAX_U32, end),
            )
        )
    return entries


def pass_entries(issuer: int, keys: list[SigningKey], taken: set[bytes]) -> list[TrustEntry]:
    """Entries for the pass keys: a pass lives for days (a ticket, a door plate), so a pass key is trusted from
    its creation until it is retired (then withdrawn), not only until its successor takes over. A key id that
    an issuer key holds already (4 random bytes each: it should never happen) is left out, not published twice."""
    return [
        TrustEntry(
            issuer=issuer,
            key_id=bytes.fromhex(key.kid),
            alg=ALG_ED25519,
            public_key=key.public_raw,
            credential_types=PASS_CREDENTIAL_TYPES,
            not_before=max(0, int(key.created_at.timestamp()) - _KEY_SLACK_S),
            not_after=min(_MAX_U32, int(key.created_at.timestamp()) + _OPEN_ENDED_S),
        )
        for key in sorted(keys, key=lambda k: (k.created_at, k.kid))
        if key.retired_at is None and bytes.fromhex(key.kid) not in taken
    ]


PARTNER_CREDENTIAL_TYPES = OWN_CREDENTIAL_TYPES
"""What a partner county's key may sign on our list: its residents' codes and device certificates, never a pass
(our apps issue passes and a pass names no issuer; with a second issuer holding pass keys, terminals that take the
one pass issuer on the list would admit no pass). The operator API and migration 0350 refuse others; a row that
holds more anyway (written by hand) is published with these only."""


def partner_entries(rows: list[asyncpg.Record]) -> list[TrustEntry]:
    entries = []
    for r in rows:
        types = frozenset(r["credential_types"]) & PARTNER_CREDENTIAL_TYPES
        if not types:
            continue  # a key allowed to sign nothing we take from partners
        entries.append(
            TrustEntry(
                issuer=r["issuer"],
                key_id=bytes(r["key_id"]),
                alg=r["alg"],
                public_key=bytes(r["public_key"]),
                credential_types=types,
                not_before=int(r["not_before"].timestamp()),
                not_after=min(_MAX_U32, int(r["not_after"].timestamp())),
            )
        )
    return entries


class TrustListService:
    def __init__(
        self,
        core: Core,
        *,
        issuer: int,
        clock_skew_s: float,
        clock: Callable[[], float] = time.time,
        unknown_key_recheck_s: float = 1.0,
    ) -> None:
        self._core = core
        self.issuer = issuer
        self.clock_skew_s = clock_skew_s
        self._clock = clock
        self._recheck_s = unknown_key_recheck_s
        self._last_recheck = -1e9
        self._current: TrustList | None = None
        self._verifier: Verifier | None = None

    @property
    def current(self) -> TrustList:
        if self._current is None:
            raise RuntimeError("trust list not loaded; the credentials plugin starts it")
        return self._current

    @property
    def verifier(self) -> Verifier:
        if self._verifier is None:
            raise RuntimeError("trust list not loaded")
        return self._verifier

    async def root_public_keys(self) -> dict[str, Ed25519PublicKey]:
        return {k.kid: k.public_key for k in await self._core.keys.keys(ROOT_PURPOSE) if k.active}

    async def _entries(self, conn: asyncpg.Connection) -> list[TrustEntry]:
        own = own_entries(self.issuer, await self._core.keys.keys(ISSUER_PURPOSE, fresh=True))
        passes = pass_entries(
            self.issuer, await self._core.keys.keys(PASS_PURPOSE, fresh=True), {e.key_id for e in own}
        )
        return own + passes + partner_entries(await repository.active_partner_keys(conn))

    async def publish_if_changed(self, conn: asyncpg.Connection) -> bool:
        """Within the caller's transaction: sign and store a new version if the accepted keys changed."""
        await repository.lock_trust_list(conn)
        entries = await self._entries(conn)
        latest = await repository.latest_trust_list(conn)
        if latest is not None:
            held = TrustList.verify(bytes(latest["envelope"]), await self.root_public_keys())
            if list(held.entries) == entries:
                return False
        version = 1 if latest is None else latest["version"] + 1
        root = await self._core.keys.active(ROOT_PURPOSE)
        envelope = build_trust_list(entries, version, root.private_key, root.kid, int(self._clock()))
        trust_list = TrustList.verify(envelope, {root.kid: root.public_key})
        await repository.insert_trust_list(conn, version, envelope, trust_list.etag)
        log.info("trust list published", extra={"version": version, "entries": len(entries)})
        return True

    async def sync(self) -> None:
        """Publish if our keys changed (e.g. `yima keys rotate`), then load the newest version."""
        async with self._core.db.transaction() as conn:
            changed = await self.publish_if_changed(conn)
        await self.reload()
        if changed:
            await self.announce()

    async def announce(self) -> None:
        await self._core.cache.publish(CHANNEL, b"trust_list")

    async def reload(self, conn: asyncpg.Connection | None = None) -> bool:
        """Load the newest stored version if it is newer than the one held; True if it changed. Reads on `conn`
        when given (a caller inside a transaction must not wait for a second pooled connection)."""
        if conn is None:
            async with self._core.db.connection() as own:
                row = await repository.latest_trust_list(own)
        else:
            row = await repository.latest_trust_list(conn)
        if row is None or (self._current is not None and row["version"] <= self._current.version):
            return False
        trust_list = TrustList.verify(
            bytes(row["envelope"]), await self.root_public_keys(), held=self._current
        )
        self._current = trust_list
        # Passes verify only with our own pass keys: our apps issue them, and a partner's key must not sign one.
        self._verifier = Verifier(trust_list, clock_skew_s=self.clock_skew_s, pass_issuer=self.issuer)
        return True

    async def recheck_for_unknown_key(self, conn: asyncpg.Connection | None = None) -> bool:
        """A scan named a key we do not hold: look for a newer list, at most once per `unknown_key_recheck_s`."""
        now = time.monotonic()
        if now - self._last_recheck < self._recheck_s:
            return False
        self._last_recheck = now
        return await self.reload(conn)

    # -- partner issuer keys (operator API) ---------------------------------------------------------------

    async def add_partner_key(
        self,
        *,
        actor: str,
        issuer: int,
        key_id: bytes,
        public_key: bytes,
        credential_types: list[str],
        not_before: datetime,
        not_after: datetime,
    ) -> TrustList:
        if issuer == self.issuer:
            raise errors.PartnerKeyInvalid(
                "Our own issuer keys are managed with `yima keys`, not as a partner"
            )
        if len(public_key) != 32:
            raise errors.PartnerKeyInvalid("An Ed25519 public key is 32 bytes")
        if not public_key_valid(public_key):
            # Of small order or not canonical: a partner's verifier using OpenSSL would accept forgeries under it.
            raise errors.PartnerKeyInvalid("Not a usable Ed25519 public key")
        if not_after <= not_before:
            raise errors.PartnerKeyInvalid("not_after must be after not_before")
        async with self._core.db.transaction() as conn:
            existing = await repository.partner_key(conn, issuer, key_id)
            if (
                existing is not None
                and existing["removed_at"] is None
                and bytes(existing["public_key"]) != public_key
            ):
                raise errors.PartnerKeyConflict()
            await repository.upsert_partner_key(
                conn,
                issuer=issuer,
                key_id=key_id,
                alg=ALG_ED25519,
                public_key=public_key,
                credential_types=sorted(set(credential_types)),
                not_before=not_before,
                not_after=not_after,
                added_at=datetime.now(UTC),
                added_by=actor,
            )
            await audit.append(
                conn,
                actor=actor,
                action="trust_list.partner_key_added",
                target=f"issuer:{issuer}/{key_id.hex()}",
                details={
                    "not_before": not_before.isoformat(),
                    "not_after": not_after.isoformat(),
                    "credential_types": sorted(set(credential_types)),
                },
            )
            await self.publish_if_changed(conn)
        await self.reload()
        await self.announce()
        return self.current

    async def remove_partner_key(self, *, actor: str, issuer: int, key_id: bytes) -> TrustList:
        async with self._core.db.transaction() as conn:
            if not await repository.remove_partner_key(conn, issuer, key_id, datetime.now(UTC)):
                raise errors.PartnerKeyNotFound()
            await audit.append(
                conn,
                actor=actor,
                action="trust_list.partner_key_removed",
                target=f"issuer:{issuer}/{key_id.hex()}",
            )
            await self.publish_if_changed(conn)
        await self.reload()
        await self.announce()
        return self.current
