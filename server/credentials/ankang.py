"""Dynamic Ankang codes: the holder's status (verified, colour, generation) and signing a fresh code.

Codes are stamped with the start of their refresh period (`period_s`) and valid for `validity_s` from it, so a
resident always holds at least `validity_s - period_s` seconds of validity and the phone refreshes once a period.
The status is cached per worker for a few seconds; a colour change or revocation drops the entry on every worker
through pub/sub, so the next refresh carries the new colour.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, cast

from yima_sdk.codes import issue_ankang_code

from server.core import Core
from server.credentials import errors, repository
from server.credentials.ports import Residents
from server.credentials.subject_ref import SubjectRefs
from server.credentials.trust_list import ISSUER_PURPOSE

Colour = Literal["green", "yellow", "red"]
DEFAULT_COLOUR: Colour = "green"
"""A verified resident with no status ever set shows green: the authority marks exceptions, not everyone."""


@dataclass(frozen=True, slots=True)
class CodeStatus:
    verified: bool
    colour: Colour
    generation: int


@dataclass(frozen=True, slots=True)
class IssuedCode:
    payload: str
    colour: Colour
    issued_at: int
    expires_at: int
    refresh_after: int
    key_id: str

    @property
    def expires_at_dt(self) -> datetime:
        return datetime.fromtimestamp(self.expires_at, UTC)

    @property
    def refresh_after_dt(self) -> datetime:
        return datetime.fromtimestamp(self.refresh_after, UTC)


class AnkangService:
    def __init__(
        self,
        core: Core,
        residents: Residents,
        *,
        subject_ref_key: bytes,
        issuer: int,
        validity_s: int = 120,
        period_s: int = 60,
        status_ttl_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < period_s < validity_s:
            raise ValueError("the refresh period must be shorter than the validity")
        self._core = core
        self._residents = residents
        self.issuer = issuer
        self.validity_s = validity_s
        self.period_s = period_s
        self._status_ttl = status_ttl_s
        self.clock = clock
        self.refs = SubjectRefs(subject_ref_key)
        self._status: dict[int, tuple[float, CodeStatus]] = {}

    # -- status cache ---------------------------------------------------------------------------------------

    async def status(self, account_id: int) -> CodeStatus:
        now = time.monotonic()
        cached = self._status.get(account_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._core.db.connection() as conn:
            id_index = await self._residents.verified_id_index(conn, account_id)
            row = await repository.code_status(
                conn, account_id, id_index, datetime.fromtimestamp(self.clock(), UTC)
            )
        colour = cast(Colour, row["colour"] or DEFAULT_COLOUR)
        status = CodeStatus(id_index is not None, colour, row["generation"])
        if status.verified:  # an unverified answer is never cached: verifying then asking must work at once
            if len(self._status) > 200_000:
                self._status.clear()
            self._status[account_id] = (now + self._status_ttl, status)
        return status

    @staticmethod
    def generation_key(account_id: int) -> str:
        """Shared-cache key holding the account's current code generation once it has revoked codes."""
        return f"ankang:generation:{account_id}"

    async def generation(self, account_id: int) -> int:
        """The account's current code generation, read from PostgreSQL now (never from a cache): the durable
        answer to the generation mark, for when the shared cache that holds the mark cannot be reached."""
        async with self._core.db.connection() as conn:
            return await repository.code_generation(conn, account_id)

    def forget(self, account_id: int | None) -> None:
        """Drop one cached status (None: all of them)."""
        if account_id is None:
            self._status.clear()
        else:
            self._status.pop(account_id, None)

    # -- issuing ------------------------------------------------------------------------------------------

    async def issue(self, account_id: int) -> IssuedCode:
        status = await self.status(account_id)
        if not status.verified:
            raise errors.RealNameRequired()
        key = await self._core.keys.active(ISSUER_PURPOSE)
        now = int(self.clock())
        bucket = now // self.period_s
        issued_at = bucket * self.period_s
        payload = issue_ankang_code(
            key.private_key,
            bytes.fromhex(key.kid),
            self.issuer,
            self.refs.seal(account_id, status.generation, bucket),
            status.colour,
            issued_at,
            self.validity_s,
        )
        return IssuedCode(
            payload=payload,
            colour=status.colour,
            issued_at=issued_at,
            expires_at=issued_at + self.validity_s,
            refresh_after=issued_at + self.period_s,
            key_id=key.kid,
        )

    def live_refs(
        self, account_id: int, generation: int, now: float, skew_s: float
    ) -> list[tuple[bytes, int]]:
        """(subject ref, expiry) of every code of this generation that a verifier could still accept at `now`."""
        first = int((now - self.validity_s - skew_s) // self.period_s)
        last = int((now + skew_s) // self.period_s)
        return [
            (self.refs.seal(account_id, generation, b), b * self.period_s + self.validity_s)
            for b in range(max(first, 0), last + 1)
        ]
