"""The one-card rules: accounts, charges and refunds for other domains, statements. Device certificates and the
settlement of offline rides live in `offline/` (`self.offline`), top-ups and reconciliation in `topups/`.

Services never commit a connection they were handed; every money movement is a journal whose postings sum to zero,
written in the same transaction as the wallet balance it moves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Callable, Sequence
from zoneinfo import ZoneInfo

import asyncpg

from server import audit
from server.db import Database
from server.idempotency import run_once
from server.identity.id_number import IdNumberError, parse_id_number
from server.keys.service import KeyStore
from server.onecard import errors, repository
from server.onecard.config import OnecardConfig
from server.onecard.offline import repository as offline_repository
from server.onecard.offline.service import OfflineRides
from server.onecard.offline.settlement import ChargeToSettle, SettlementResult
from server.onecard.payments.base import PaymentProvider
from server.onecard.ports import RevocationPublisher, VerifiedResidents
from server.onecard.results import (
    CardView,
    ChargeResult,
    RefundResult,
    Statement,
    StatementEntry,
)
from server.onecard.ss_card import CardNumberError, mask_card_number, normalise_card_number
from server.security import FieldCipher

log = logging.getLogger("yima.onecard")

CST = ZoneInfo("Asia/Shanghai")
"""Business days and statement months are counted in China Standard Time."""
_NO_FLOOR = -(2**62)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def month_bounds(month: str) -> tuple[dt.datetime, dt.datetime]:
    """ "2025-03" -> [start, end) of that month in China Standard Time."""
    try:
        year, mon = (int(p) for p in month.split("-"))
        if len(month) != 7 or not month.isascii() or not 1 <= mon <= 12 or year < 2000:
            raise ValueError(month)
        start = dt.datetime(year, mon, 1, tzinfo=CST)
        end = dt.datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=CST)  # 9999-12 ends past the calendar
    except ValueError:
        raise errors.MonthInvalid() from None
    return start, end


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a business day in China Standard Time; days the ledger cannot hold are refused."""
    if not dt.date(2000, 1, 1) <= day < dt.date.max:  # the last day's end is past the calendar
        raise errors.DateInvalid()
    start = dt.datetime(day.year, day.month, day.day, tzinfo=CST)
    return start, start + dt.timedelta(days=1)


class OnecardService:
    def __init__(
        self,
        config: OnecardConfig,
        db: Database,
        cipher: FieldCipher,
        keys: KeyStore,
        account_ref_key: bytes,
        payments: PaymentProvider,
        residents: VerifiedResidents,
        revocations: RevocationPublisher,
        *,
        notify_url: str,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        self.config = config
        self._residents = residents
        self.db = db
        self._cipher = cipher
        self.keys = keys
        self._ref_key = account_ref_key
        self.payments = payments
        self.notify_url = notify_url
        self.clock = clock
        self.revocations = revocations
        self._system_ids: dict[str, int] = {}
        self.offline = OfflineRides(self)

    # -- helpers ---------------------------------------------------------------------------------------------

    def account_ref(self, onecard_id: int) -> bytes:
        """The 16-byte pseudonymous reference of a one-card account; only the server can map it back."""
        return hmac.new(
            self._ref_key, b"onecard-account:" + onecard_id.to_bytes(8, "big"), hashlib.sha256
        ).digest()[:16]

    async def system_account(self, conn: asyncpg.Connection, code: str) -> int:
        found = self._system_ids.get(code)
        if found is None:
            found = self._system_ids[code] = await repository.system_account(conn, code)
        return found

    async def card(self, conn: asyncpg.Connection, account_id: int) -> asyncpg.Record:
        card = await repository.card_by_owner(conn, account_id)
        if card is None:
            raise errors.NotOpen()
        return card

    # -- accounts --------------------------------------------------------------------------------------------

    async def open_account(self, conn: asyncpg.Connection, account_id: int, ss_card_number: str) -> CardView:
        """Open the resident's one-card linked to their social security card; the same card again is a no-op."""
        try:
            number = normalise_card_number(ss_card_number)
        except CardNumberError as exc:
            raise errors.CardNumberInvalid(f"The social security card number is not valid: {exc}") from None
        id_index = await self._residents.verified_id_index(conn, account_id)
        if id_index is None:
            raise errors.IdentityRequired()
        index = self._cipher.blind_index("ss_card_number", number)
        # Only the card the issuer gave this identity, as the electronic social security card is issued: one
        # answer for someone else's card, an unknown card and a typo, so the answer tells nothing about others.
        if await repository.issued_card(conn, id_index) != index:
            raise errors.CardNotYours()
        existing = await repository.card_by_owner(conn, account_id)
        if existing is not None:
            if bytes(existing["ss_card_index"]) != index:
                raise errors.AlreadyOpen()
            return self._view(existing)
        owner = await repository.card_by_index(conn, index)
        if owner is not None:
            raise errors.CardTaken()
        card_id = await repository.next_card_id(conn)
        wallet_id = await repository.create_wallet(conn, f"wallet:{card_id}", self.config.offline_floor_fen)
        try:
            async with conn.transaction():  # savepoint: a concurrent link of the same card loses cleanly
                await repository.insert_card(
                    conn,
                    card_id=card_id,
                    owner_account_id=account_id,
                    ss_card_enc=self._cipher.encrypt("ss_card_number", number),
                    ss_card_index=index,
                    account_ref=self.account_ref(card_id),
                    wallet_id=wallet_id,
                )
        except asyncpg.UniqueViolationError:
            raise errors.CardTaken() from None
        await audit.append(
            conn, actor=f"account:{account_id}", action="onecard.opened", target=f"onecard:{card_id}"
        )
        return await self.view(conn, account_id)

    async def record_issued_card(self, conn: asyncpg.Connection, id_number: str, card_number: str) -> None:
        """Record the card the issuer gave an identity (`yima onecard import-cards`, from the issuer's file)."""
        try:
            identity = parse_id_number(id_number)
            number = normalise_card_number(card_number)
        except (IdNumberError, CardNumberError) as exc:
            raise errors.CardNumberInvalid(f"Not an ID number and card number pair: {exc}") from None
        await repository.record_issued_card(
            conn,
            self._cipher.blind_index("id_number", identity.value),
            self._cipher.blind_index("ss_card_number", number),
            self.clock(),
        )

    def _view(self, card: asyncpg.Record) -> CardView:
        number = self._cipher.decrypt("ss_card_number", card["ss_card_enc"])
        return CardView(
            card["id"],
            card["balance_fen"],
            mask_card_number(number),
            card["ecard_status"],
            card["created_at"],
        )

    async def view(self, conn: asyncpg.Connection, account_id: int) -> CardView:
        return self._view(await self.card(conn, account_id))

    async def statement(self, conn: asyncpg.Connection, account_id: int, month: str) -> Statement:
        start, end = month_bounds(month)
        card = await self.card(conn, account_id)
        opening = await repository.wallet_sum_before(conn, card["wallet_id"], start)
        balance = opening
        credits = debits = 0
        entries = []
        for row in await repository.wallet_postings_between(conn, card["wallet_id"], start, end):
            amount = int(row["amount_fen"])
            balance += amount
            if amount > 0:
                credits += amount
            else:
                debits -= amount
            entries.append(StatementEntry(row["posted_at"], row["kind"], amount, balance, _describe(row)))
        return Statement(month, opening, balance, credits, debits, entries)

    # -- charges and refunds (the mini-app payment capability) ---------------------------------------------------

    async def charge(
        self,
        conn: asyncpg.Connection,
        *,
        account_id: int,
        amount_fen: int,
        reason: str,
        idempotency_key: str,
        app_id: str | None,
    ) -> ChargeResult:
        """Charge the resident's one-card once per idempotency key; never below the configured floor.

        `account_id` is the resident's account (what `Principal.account_id` holds). Raises NotOpen,
        AmountInvalid, InsufficientBalance, IdempotencyKeyReused.
        """
        if amount_fen <= 0 or not reason.strip() or len(reason) > 200:
            raise errors.AmountInvalid(
                "A charge needs a positive amount and a reason of at most 200 characters"
            )

        async def operation() -> ChargeResult:
            card = await self.card(conn, account_id)
            balance = await repository.adjust_wallet(
                conn, card["wallet_id"], -amount_fen, self.config.floor_fen
            )
            if balance is None:
                raise errors.InsufficientBalance()
            now = self.clock()
            revenue = await self.system_account(
                conn, f"app:{app_id}" if app_id else "system:platform_revenue"
            )
            journal = await repository.post_journal(
                conn,
                "charge",
                f"charge:{account_id}:{idempotency_key}",
                [(card["wallet_id"], -amount_fen), (revenue, amount_fen)],
                now,
            )
            assert journal is not None  # the idempotency key row makes the reference unique
            charge_id = await repository.insert_charge(
                conn,
                card_id=card["id"],
                amount_fen=amount_fen,
                reason=reason,
                app_id=app_id,
                journal_id=journal,
                at=now,
            )
            await audit.append(
                conn,
                actor=f"app:{app_id}" if app_id else "platform",
                action="onecard.charged",
                target=f"onecard:{card['id']}",
                details={"charge_id": charge_id, "amount_fen": amount_fen},
            )
            return ChargeResult(charge_id, amount_fen, balance, now)

        result, _ = await run_once(
            conn,
            scope=f"onecard.charge:{account_id}",
            key=idempotency_key,
            request={"amount_fen": amount_fen, "reason": reason, "app_id": app_id},
            result_type=ChargeResult,
            operation=operation,
            status=201,
        )
        return result

    async def refund(
        self, conn: asyncpg.Connection, *, charge_id: int, amount_fen: int, idempotency_key: str, reason: str
    ) -> RefundResult:
        """Give back part or all of a charge, once per idempotency key; refunds never exceed the charge."""
        if amount_fen <= 0 or not reason.strip() or len(reason) > 200:
            raise errors.AmountInvalid(
                "A refund needs a positive amount and a reason of at most 200 characters"
            )

        async def operation() -> RefundResult:
            charge = await repository.charge_for_update(conn, charge_id)
            if charge is None:
                raise errors.ChargeNotFound()
            if charge["refunded_fen"] + amount_fen > charge["amount_fen"]:
                raise errors.RefundExceedsCharge()
            refunded = await repository.add_refunded(conn, charge_id, amount_fen)
            balance = await repository.adjust_wallet(conn, charge["wallet_id"], amount_fen, _NO_FLOOR)
            assert balance is not None
            app_id = charge["app_id"]
            revenue = await self.system_account(
                conn, f"app:{app_id}" if app_id else "system:platform_revenue"
            )
            await repository.post_journal(
                conn,
                "refund",
                f"refund:{charge_id}:{idempotency_key}",
                [(charge["wallet_id"], amount_fen), (revenue, -amount_fen)],
                self.clock(),
            )
            await audit.append(
                conn,
                actor=f"app:{app_id}" if app_id else "platform",
                action="onecard.refunded",
                target=f"onecard:{charge['onecard_account_id']}",
                details={"charge_id": charge_id, "amount_fen": amount_fen, "reason": reason[:200]},
            )
            return RefundResult(charge_id, amount_fen, refunded, balance)

        result, _ = await run_once(
            conn,
            scope=f"onecard.refund:{charge_id}",
            key=idempotency_key,
            request={"amount_fen": amount_fen, "reason": reason},
            result_type=RefundResult,
            operation=operation,
        )
        return result

    # -- offline rides (offline/service.py) ----------------------------------------------------------------------

    async def settle_offline_charges(
        self, conn: asyncpg.Connection, charges: Sequence[ChargeToSettle]
    ) -> list[SettlementResult]:
        """The terminals' offline-settlement port: `OfflineRides.settle_offline_charges`."""
        return await self.offline.settle_offline_charges(conn, charges)

    async def ride_code_owners(self, conn: asyncpg.Connection, serials: Sequence[bytes]) -> dict[bytes, int]:
        """The terminals' offline-settlement port: whose card each device certificate is (a tap-off's rider)."""
        return await offline_repository.certificate_owners(conn, serials)

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
        """The platform's payments port: `OfflineRides.refund_ride` (part of a settled ride back, by its app)."""
        return await self.offline.refund_ride(
            conn,
            scan_id=scan_id,
            app_id=app_id,
            amount_fen=amount_fen,
            idempotency_key=idempotency_key,
            reason=reason,
        )


def _describe(row: asyncpg.Record) -> str:
    kind = row["kind"]
    if kind == "charge":
        return str(row["reason"] or "charge") + (f" ({row['app_id']})" if row["app_id"] else "")
    if kind == "topup":
        return f"top-up {row['order_no']}"
    if kind == "offline_ride":
        if row["terminal_fen"] is not None:  # re-priced at settlement by the fare in force at the ride
            return f"ride, terminal {row['terminal_id']} (re-priced; the terminal asked {row['terminal_fen']} fen)"
        return f"ride, terminal {row['terminal_id']}"
    if kind == "refund":
        return "refund"
    return kind
