"""The credentials domain's services, built once at start-up, and the worker's change listener."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass, field

import asyncpg
from yima_sdk.codes import VerifiedCode

from server.cache import follow
from server.core import Core
from server.credentials import repository
from server.credentials.ankang import AnkangService
from server.credentials.health import HealthService
from server.credentials.ports import Residents
from server.credentials.revocation import RevocationService
from server.credentials.trust_list import CHANNEL, TrustListService

log = logging.getLogger("yima.credentials")

"""Administrative division code of Guangde county, our issuer id."""


@dataclass(frozen=True, slots=True)
class CodeTiming:
    period_s: int
    validity_s: int
    skew_s: float


@dataclass
class Credentials:
    trust: TrustListService
    ankang: AnkangService
    health: HealthService
    revocations: RevocationService
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(cls, core: Core, residents: Residents, *, subject_ref_key: bytes) -> Credentials:
        s = core.settings
        issuer, skew = s.issuer_code, s.clock_skew_s
        validity, period = s.ankang_validity_s, s.ankang_refresh_s
        trust = TrustListService(core, issuer=issuer, clock_skew_s=skew)
        ankang = AnkangService(
            core,
            residents,
            subject_ref_key=subject_ref_key,
            issuer=issuer,
            validity_s=validity,
            period_s=period,
        )
        return cls(
            trust=trust,
            ankang=ankang,
            health=HealthService(core, ankang, residents),
            revocations=RevocationService(core, ankang, issuer=issuer, clock_skew_s=skew),
        )

    def verify_code(self, payload: str, now: float) -> VerifiedCode:
        """A code checked against the trust list (raises yima_sdk.codes.CredentialError)."""
        return self.trust.verifier.verify(payload, now)

    def holder(self, code: VerifiedCode) -> int | None:
        """The account an Ankang code of ours names; None for a partner's code or a ride code."""
        if code.kind != "ankang_code":
            return None
        subject = self.ankang.refs.open(code.subject_ref)
        return None if subject is None else subject.account_id

    async def revoke_pass(self, conn: asyncpg.Connection, *, number: int, valid_until: dt.datetime) -> None:
        """Put a revoked app pass on the revocation list terminals sync (in the caller's transaction)."""
        await self.revocations.revoke_pass(conn, number=number, valid_until=valid_until)

    # ---- holder tags of terminal lists (server.platform.terminal_lists) -----------------------------

    @property
    def code_timing(self) -> CodeTiming:
        """How our Ankang codes are bucketed: refresh period, validity, and the verifiers' clock tolerance."""
        return CodeTiming(self.ankang.period_s, self.ankang.validity_s, self.trust.clock_skew_s)

    async def code_generation(self, account_id: int) -> int:
        return await self.ankang.generation(account_id)

    async def code_generations(self, conn: asyncpg.Connection, account_ids: list[int]) -> dict[int, int]:
        return await repository.code_generations(conn, account_ids)

    def subject_refs(self, account_id: int, generation: int, buckets: range) -> list[bytes]:
        """The subject refs of the resident's codes of `generation` issued in each bucket, in order."""
        seal = self.ankang.refs.seal
        return [seal(account_id, generation, bucket) for bucket in buckets]

    async def health_colour(self, account_id: int) -> str:
        return (await self.ankang.status(account_id)).colour

    async def start(self, core: Core, *, poll_s: float = 10.0) -> None:
        await self.trust.sync()
        await self.revocations.reload()
        self._tasks = [
            asyncio.create_task(self._listen(core), name="credentials-listener"),
            asyncio.create_task(self._poll(poll_s), name="credentials-poll"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _on_message(self, message: bytes) -> None:
        if message == b"trust_list":
            await self.trust.reload()
        elif message == b"revocations":
            await self.revocations.reload()
        elif message.startswith(b"status:"):
            target = message[len(b"status:") :]
            self.ankang.forget(None if target == b"*" else int(target))

    async def _listen(self, core: Core) -> None:
        await follow(core.cache, CHANNEL, self._on_message)

    async def _poll(self, every_s: float) -> None:
        # The safety net when a message was missed (or sent by a CLI process without a shared cache).
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.trust.reload()
                await self.revocations.reload()
                self.ankang.forget(None)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("credentials poll failed", exc_info=True)
