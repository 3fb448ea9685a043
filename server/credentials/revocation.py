"""Revocation: a resident's live codes (lost phone, operator action), device certificates and mini-app passes.

Three layers, fastest first:
- a generation mark in the shared cache (`AnkangService.generation_key`): a scan of one of our codes whose
  generation is older is refused on every worker from the moment the revocation returns;
- the durable per-issuer list in PostgreSQL, served as versioned deltas to offline terminals (`delta`);
- each worker's in-memory copy of that list (`is_revoked`), for partner issuers and device certificates.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Final

import asyncpg
from yima_sdk.trust import RevocationKind, encode_revocation_delta, pass_ref

from server import audit
from server.core import Core
from server.credentials import errors, repository
from server.credentials.ankang import AnkangService
from server.credentials.trust_list import CHANNEL

FIRST_KINDS: Final = frozenset({"subject", "device_certificate"})
"""The revocation kinds the first terminal SDK knew, and all a terminal that names none is sent. Such an SDK
(before 9dd2365) refuses a whole delta holding any other kind, and with it every later revocation
(docs/scan.md, Revocation)."""


class RevocationService:
    def __init__(
        self,
        core: Core,
        ankang: AnkangService,
        *,
        issuer: int,
        clock_skew_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._core = core
        self._ankang = ankang
        self.issuer = issuer
        self.clock_skew_s = clock_skew_s
        self.clock = clock
        self._revoked: dict[tuple[int, str, bytes], datetime] = {}

    @property
    def mark_ttl_s(self) -> float:
        # Past this every code of an older generation has expired, so the mark is no longer needed.
        return self._ankang.validity_s + self._ankang.period_s + 2 * self.clock_skew_s + 60

    async def revoke_codes(self, *, actor: str, account_id: int, reason: str) -> tuple[int, int]:
        """Revoke every live code of the account; returns (references published, new list version)."""
        now = self.clock()
        at = datetime.fromtimestamp(now, UTC)
        async with self._core.db.transaction() as conn:
            try:
                generation = await repository.next_generation(conn, account_id, at)
            except asyncpg.ForeignKeyViolationError:
                raise errors.AccountNotFound() from None
            version = await repository.lock_revocations(conn, self.issuer)
            published = 0
            for ref, expires in self._ankang.live_refs(account_id, generation - 1, now, self.clock_skew_s):
                inserted = await repository.insert_revocation(
                    conn,
                    issuer=self.issuer,
                    version=version + 1,
                    kind="subject",
                    ref=ref,
                    revoked_at=at,
                    expires_at=datetime.fromtimestamp(expires + self.clock_skew_s, UTC),
                    reason=reason,
                )
                if inserted:
                    version += 1
                    published += 1
            await audit.append(
                conn,
                actor=actor,
                action="ankang.codes_revoked",
                target=f"account:{account_id}",
                details={"reason": reason, "generation": generation, "version": version},
            )
        # Before answering: from now on every worker refuses the old generation.
        await self._core.cache.set(
            AnkangService.generation_key(account_id), str(generation).encode(), self.mark_ttl_s
        )
        self._ankang.forget(account_id)
        await self._core.cache.publish(CHANNEL, b"status:" + str(account_id).encode())
        await self._core.cache.publish(CHANNEL, b"revocations")
        await self.reload()
        return published, version

    async def revoke_device_certificate(
        self, conn: asyncpg.Connection, *, actor: str, serial: bytes, expires_at: datetime, reason: str
    ) -> int:
        """For the one-card domain: revoke a device certificate by serial inside the caller's transaction.

        Call `announce()` after the transaction commits so every worker reloads its copy.
        """
        version = await repository.lock_revocations(conn, self.issuer)
        if await repository.insert_revocation(
            conn,
            issuer=self.issuer,
            version=version + 1,
            kind="device_certificate",
            ref=serial,
            revoked_at=datetime.now(UTC),
            expires_at=expires_at,
            reason=reason,
        ):
            version += 1
            await audit.append(
                conn,
                actor=actor,
                action="device_certificate.revoked",
                target=f"certificate:{serial.hex()}",
                details={"reason": reason},
            )
        return version

    async def revoke_pass(self, conn: asyncpg.Connection, *, number: int, valid_until: datetime) -> None:
        """Publish a revoked app pass (signed with our `app_pass` keys) inside the caller's transaction, so
        terminals refuse it offline after their next sync. Only the pass number goes on the list; the entry is
        dropped from full lists once the pass has expired (plus the clock-skew tolerance)."""
        version = await repository.lock_revocations(conn, self.issuer)
        await repository.insert_revocation(
            conn,
            issuer=self.issuer,
            version=version + 1,
            kind="app_pass",
            ref=pass_ref(number),
            revoked_at=datetime.fromtimestamp(self.clock(), UTC),
            expires_at=valid_until + timedelta(seconds=self.clock_skew_s),
            reason="pass.revoked",
        )

    async def announce(self) -> None:
        await self._core.cache.publish(CHANNEL, b"revocations")
        await self.reload()

    async def delta(
        self, issuer: int, since: int, kinds: Collection[str] = FIRST_KINDS
    ) -> tuple[bytes, dict[str, int]]:
        """The `GET /v1/revocations` body for a terminal that knows `kinds`, and how many entries of each other
        kind it leaves out. A `since` ahead of what we hold gets the full list (since 0).

        The version is the list's whatever is left out, so the terminal's next delta starts after those
        entries too: a terminal that learns a kind later asks for the full list again (docs/scan.md)."""
        async with self._core.db.connection() as conn:
            version = await repository.revocation_version(conn, issuer)
            if since > version:
                since = 0
            rows = await repository.revocations_after(
                conn, issuer, since, datetime.fromtimestamp(self.clock(), UTC)
            )
        entries: list[tuple[int, RevocationKind, bytes]] = []
        withheld: Counter[str] = Counter()
        for r in rows:
            if r["kind"] in kinds:
                entries.append((r["version"], r["kind"], bytes(r["ref"])))
            else:
                withheld[r["kind"]] += 1
        return encode_revocation_delta(issuer, since, version, entries), dict(withheld)

    # -- the in-memory copy used by this server's own scans ---------------------------------------------

    async def reload(self) -> None:
        after = datetime.fromtimestamp(self.clock(), UTC) - timedelta(seconds=self.clock_skew_s)
        async with self._core.db.connection() as conn:
            rows = await repository.revocations_for_servers(conn, after)
        self._revoked = {(r["issuer"], r["kind"], bytes(r["ref"])): r["revoked_at"] for r in rows}

    def revoked_at(self, issuer: int, kind: str, ref: bytes) -> datetime | None:
        """When this subject ref or certificate serial was revoked, or None."""
        return self._revoked.get((issuer, kind, ref))
