"""What residents do with mini-apps outside the gateway: consent per scope, the inbox, confirming payments.

Consent: per resident, per app, per scope, one of granted / refused / never asked. Besides the data scopes of
[scopes], an app's [share_passes_with] entries are scopes `pass_share:<other app>`: granted, the other app honours
this app's passes held by the resident (an e-prescription redeemed at a pharmacy). A refused or unasked scope
answers the app `consent.denied` at once; the phone offers the consent screen only for scopes never asked,
so a refusal is never followed by a prompt loop.

Payments: an app's `payments.charge` creates a pending payment; the one-card is charged only when the resident
confirms it (`POST /v1/me/payments/{id}/confirm`), with the app's idempotency key, so retries charge once;
confirming an already paid payment again answers it unchanged (declined or failed ones answer
`payment.already_decided`, and so do those the app cancelled before the resident confirmed: `payments.cancel`;
both lock the row, so a cancelled fee is never charged).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import asyncpg

from server import audit
from server.errors import AppError
from server.platform import errors as e
from server.platform.ports import Payments
from server.platform.residents import repository
from server.platform.runtime.service import Runtime


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Residents:
    def __init__(self, runtime: Runtime, payments: Payments, clock: Callable[[], dt.datetime] = _now) -> None:
        self.runtime = runtime
        self.payments = payments
        self.clock = clock

    # ---- consent --------------------------------------------------------------------------------------

    def declared_scopes(self, app_id: str) -> dict[str, str]:
        live = self.runtime.apps.get(app_id)
        if live is None:
            raise e.AppNotFound()
        scopes: dict[str, str] = {}
        for v in live.versions():
            scopes |= v.consent_scopes
        return scopes

    def _check_scope(self, app_id: str, scope: str) -> None:
        """An unknown app or scope is refused (404, 422), never stored."""
        if scope not in self.declared_scopes(app_id):
            raise e.UnknownScope(extra={"scope": scope})

    async def decide(
        self, conn: asyncpg.Connection, account_id: int, app_id: str, scope: str, granted: bool
    ) -> None:
        self._check_scope(app_id, scope)
        await repository.set_consent(conn, account_id, app_id, scope, granted, self.clock())
        await audit.append(
            conn,
            actor=f"account:{account_id}",
            action="consent.granted" if granted else "consent.refused",
            target=f"miniapp:{app_id}",
            details={"scope": scope},
        )

    async def revoke(self, conn: asyncpg.Connection, account_id: int, app_id: str, scope: str) -> None:
        """Withdraw a grant; recorded as a refusal, so the app is denied and the phone does not nag."""
        self._check_scope(app_id, scope)
        await repository.set_consent(conn, account_id, app_id, scope, False, self.clock())
        await audit.append(
            conn,
            actor=f"account:{account_id}",
            action="consent.revoked",
            target=f"miniapp:{app_id}",
            details={"scope": scope},
        )

    # ---- inbox ----------------------------------------------------------------------------------------

    async def inbox(
        self, conn: asyncpg.Connection, account_id: int, before: int | None, limit: int
    ) -> list[Any]:
        return await repository.inbox(conn, account_id, before, limit)

    # ---- payments -------------------------------------------------------------------------------------

    async def confirm(self, conn: asyncpg.Connection, account_id: int, payment_id: int) -> asyncpg.Record:
        row = await self._owned(conn, account_id, payment_id)
        if row["status"] == "succeeded":
            return (
                row  # a retried confirmation (the phone lost the answer): already paid, never charged twice
            )
        self._still_pending(row)
        at = self.clock()
        try:
            async with conn.transaction():  # a savepoint: a refused charge leaves the payment to record it
                result = await self.payments.charge(
                    conn,
                    account_id=account_id,
                    amount_fen=row["amount_fen"],
                    reason=row["reason"],
                    idempotency_key=f"miniapp:{row['id']}:{row['idempotency_key']}"[:128],
                    app_id=row["app_id"],
                )
        except AppError as exc:
            await repository.decide_payment(conn, payment_id, "failed", at, None, exc.code)
            await audit.append(
                conn,
                actor=f"account:{account_id}",
                action="payment.failed",
                target=f"miniapp_payment:{payment_id}",
                details={"code": exc.code},
            )
        else:
            await repository.decide_payment(conn, payment_id, "succeeded", at, result.charge_id, None)
            await audit.append(
                conn,
                actor=f"account:{account_id}",
                action="payment.confirmed",
                target=f"miniapp_payment:{payment_id}",
                details={"amount_fen": row["amount_fen"], "app_id": row["app_id"]},
            )
        found = await repository.payment(conn, payment_id)
        assert found is not None
        return found

    async def decline(self, conn: asyncpg.Connection, account_id: int, payment_id: int) -> asyncpg.Record:
        await self._pending(conn, account_id, payment_id)
        await repository.decide_payment(conn, payment_id, "declined", self.clock(), None, None)
        await audit.append(
            conn,
            actor=f"account:{account_id}",
            action="payment.declined",
            target=f"miniapp_payment:{payment_id}",
        )
        found = await repository.payment(conn, payment_id)
        assert found is not None
        return found

    async def _pending(self, conn: asyncpg.Connection, account_id: int, payment_id: int) -> asyncpg.Record:
        row = await self._owned(conn, account_id, payment_id)
        self._still_pending(row)
        return row

    async def _owned(self, conn: asyncpg.Connection, account_id: int, payment_id: int) -> asyncpg.Record:
        # locked: two confirmations racing wait for each other, and the second sees the first's decision
        row = await repository.payment(conn, payment_id, for_update=True)
        if row is None or row["account_id"] != account_id:
            raise e.PaymentNotFound()
        return row

    @staticmethod
    def _still_pending(row: asyncpg.Record) -> None:
        if row["status"] != "pending_confirmation":
            raise e.PaymentDecided(
                f"this payment is {row['status']}", extra={"payment_status": row["status"]}
            )
