"""What the platform needs of other domains: its ports, answered by their services at start-up.

`PlatformPlugin` takes the providing plugins (`server/app.py` wires them) and hands their started services to
`Platform.start`, so every call from the platform into identity, credentials or one-card is checked by mypy
against these Protocols, and none goes through `app.state`.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

import asyncpg
from yima_sdk.codes import VerifiedCode


class ResidentProfile(Protocol):
    """What a consented scope may tell an app about the resident."""

    @property
    def phone_masked(self) -> str: ...
    @property
    def name_masked(self) -> str | None: ...
    @property
    def birth_date(self) -> dt.date | None: ...


class Accounts(Protocol):
    """Identity: the resident behind a scope, and the account `yima dev` owns local apps with."""

    async def profile(self, conn: asyncpg.Connection, account_id: int) -> ResidentProfile: ...

    async def registered_in(self, conn: asyncpg.Connection, account_id: int, county: str) -> bool | None:
        """Only whether the real-name identity is registered in `county` (6 digits); None without a real name."""
        ...

    async def account_id_for_phone(
        self, conn: asyncpg.Connection, phone: str, *, create: bool
    ) -> int | None: ...


class CodeTiming(Protocol):
    """How Ankang codes are bucketed (yima_sdk.lists.tag_buckets)."""

    @property
    def period_s(self) -> int: ...
    @property
    def validity_s(self) -> int: ...
    @property
    def skew_s(self) -> float: ...


class HealthCodes(Protocol):
    """Credentials: an app's `credentials.verify` of a code and its `health_color` scope."""

    def verify_code(self, payload: str, now: float) -> VerifiedCode:
        """The code checked against the trust list; raises yima_sdk.codes.CredentialError."""
        ...

    def holder(self, code: VerifiedCode) -> int | None:
        """The account an Ankang code of ours names; None for a partner's code or a ride code."""
        ...

    async def health_colour(self, account_id: int) -> str: ...

    async def revoke_pass(self, conn: asyncpg.Connection, *, number: int, valid_until: dt.datetime) -> None:
        """Put a revoked app pass (by number only) on the revocation list terminals sync, in `conn`'s transaction."""
        ...

    # terminal lists' holder tags (server.platform.terminal_lists)

    @property
    def code_timing(self) -> CodeTiming: ...

    async def code_generation(self, account_id: int) -> int:
        """The resident's current code generation (codes of older ones are revoked)."""
        ...

    async def code_generations(self, conn: asyncpg.Connection, account_ids: list[int]) -> dict[int, int]:
        """The current generation of those of the accounts that ever moved past 0."""
        ...

    def subject_refs(self, account_id: int, generation: int, buckets: range) -> list[bytes]:
        """The subject refs of the resident's codes of `generation` in each code bucket, in order."""
        ...


class ChargeResult(Protocol):
    """A settled charge: the platform records its id on the payment, for refunds."""

    @property
    def charge_id(self) -> int: ...


class RefundResult(Protocol):
    """A refund given: this one's amount and the charge's refunded total."""

    @property
    def amount_fen(self) -> int: ...
    @property
    def refunded_fen(self) -> int: ...


CHARGE_NOT_FOUND = "onecard.charge_not_found"
"""The code (server.errors.AppError.code) of a refusal by `Payments.refund_ride`: no such settled ride for the app."""
REFUND_EXCEEDS_CHARGE = "onecard.refund_exceeds_charge"
"""The code of a refusal by `Payments.refund` and `refund_ride`: refunds may not exceed what was charged."""


class Payments(Protocol):
    """One-card: a resident's confirmed mini-app payment, and an app's refund of it. A refusal raises an
    AppError (server.errors) whose `code` says why (CHARGE_NOT_FOUND, REFUND_EXCEEDS_CHARGE, or
    server.idempotency.IdempotencyKeyReused); the platform maps it to the app's InvalidArgument."""

    async def charge(
        self,
        conn: asyncpg.Connection,
        *,
        account_id: int,
        amount_fen: int,
        reason: str,
        idempotency_key: str,
        app_id: str | None,
    ) -> ChargeResult: ...

    async def refund(
        self, conn: asyncpg.Connection, *, charge_id: int, amount_fen: int, idempotency_key: str, reason: str
    ) -> RefundResult: ...

    async def refund_ride(
        self,
        conn: asyncpg.Connection,
        *,
        scan_id: str,
        app_id: str,
        amount_fen: int,
        idempotency_key: str,
        reason: str,
    ) -> RefundResult:
        """Part of a settled offline ride back to its card; only the app bound to its scene (ChargeNotFound)."""
        ...
