"""Top-ups through the payment provider (order -> provider -> signed notification -> credit exactly once) and the
daily reconciliation of our ledger against the provider's bill.

Notifications may arrive twice, late (after we closed the order locally), out of order ("paying" after "paid")
or for an order whose creating transaction has not committed yet. The order row is locked while a notification
is applied, the provider's "paid" always wins (money moved), and the credit is a journal keyed by the order number,
so whatever arrives, a top-up is credited at most once.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Mapping

import asyncpg

from server import audit
from server.db import Database
from server.idempotency import run_once
from server.onecard import errors, repository
from server.onecard.payments.base import NotificationError, OrderState, PaymentProvider, ProviderError
from server.onecard.results import Mismatch, ReconciliationReport, TopupOrder
from server.onecard.service import CST, OnecardService, day_bounds
from server.onecard.topups import repository as topups_repository

log = logging.getLogger("yima.onecard.topups")

_NO_FLOOR = -(2**62)


class Topups:
    def __init__(self, onecard: OnecardService, db: Database) -> None:
        self._onecard = onecard
        self._db = db

    @property
    def payments(self) -> PaymentProvider:
        return self._onecard.payments

    def clock(self) -> dt.datetime:
        return self._onecard.clock()

    async def create(
        self, conn: asyncpg.Connection, account_id: int, amount_fen: int, idempotency_key: str
    ) -> TopupOrder:
        """A top-up order at the provider, once per idempotency key; the phone pays with the returned params."""
        cfg = self._onecard.config
        if not cfg.min_topup_fen <= amount_fen <= cfg.max_topup_fen:
            raise errors.AmountInvalid(f"A top-up is {cfg.min_topup_fen} to {cfg.max_topup_fen} fen")

        async def operation() -> TopupOrder:
            card = await repository.card_by_owner(conn, account_id)
            if card is None:
                raise errors.NotOpen()
            now = self.clock()
            order_no = "T" + now.astimezone(CST).strftime("%Y%m%d%H%M%S") + secrets.token_hex(6)
            await topups_repository.insert_topup(
                conn,
                order_no=order_no,
                card_id=card["id"],
                amount_fen=amount_fen,
                provider=self.payments.name,
                at=now,
            )
            try:
                order = await self.payments.create_order(
                    order_no, amount_fen, "Guangde one-card top-up", self._onecard.notify_url
                )
            except ProviderError as exc:
                log.warning("top-up order not created", extra={"order_no": order_no, "error": str(exc)})
                raise errors.ProviderUnavailable() from None
            await topups_repository.set_topup_prepay(conn, order_no, order.prepay_id, order.pay_url)
            expires = now + dt.timedelta(seconds=cfg.topup_expiry_s)
            return TopupOrder(order_no, amount_fen, "pending", order.pay_url, order.pay_params, expires)

        result, _ = await run_once(
            conn,
            scope=f"onecard.topup:{account_id}",
            key=idempotency_key,
            request={"amount_fen": amount_fen},
            result_type=TopupOrder,
            operation=operation,
            status=201,
        )
        return result

    async def handle_notification(self, headers: Mapping[str, str], body: bytes) -> str:
        """Check and apply one provider notification in its own transaction; returns what was done.

        Unknown orders answer 404 so the provider retries: the order's own transaction may not have committed yet.
        """
        try:
            note = self.payments.parse_notification(headers, body)
        except NotificationError as exc:
            log.warning("payment notification refused", extra={"reason": exc.code})
            if exc.code == "malformed":
                raise errors.NotificationMalformed() from None
            raise errors.NotificationInvalid() from None
        async with self._db.transaction() as conn:
            outcome = await self._apply(
                conn,
                note.order_no,
                note.state,
                note.amount_fen,
                note.provider_txn_id,
                note.paid_at,
                note.notify_id,
            )
        return outcome

    async def sync(self, conn: asyncpg.Connection, order_no: str) -> str:
        """Ask the provider about an order and apply its answer (when notifications are slow or lost)."""
        try:
            status = await self.payments.query_order(order_no)
        except ProviderError:
            return "provider_unavailable"
        if status is None:
            return "unknown_at_provider"
        return await self._apply(
            conn, order_no, status.state, status.amount_fen, status.provider_txn_id, status.paid_at, None
        )

    async def _apply(
        self,
        conn: asyncpg.Connection,
        order_no: str,
        state: OrderState,
        amount_fen: int,
        provider_txn_id: str | None,
        paid_at: dt.datetime | None,
        notify_id: str | None,
    ) -> str:
        order = await topups_repository.topup_for_update(conn, order_no)
        if order is None:
            raise errors.UnknownOrder()
        now = self.clock()
        outcome = await self._transition(conn, order, state, amount_fen, provider_txn_id, paid_at, now)
        if notify_id is not None:
            await topups_repository.record_notification(
                conn,
                notify_id=notify_id,
                order_no=order_no,
                state=state,
                amount_fen=amount_fen,
                outcome=outcome,
                at=now,
            )
        return outcome

    async def _transition(
        self,
        conn: asyncpg.Connection,
        order: asyncpg.Record,
        state: OrderState,
        amount_fen: int,
        provider_txn_id: str | None,
        paid_at: dt.datetime | None,
        now: dt.datetime,
    ) -> str:
        order_no, current = order["order_no"], order["state"]
        if state == "paid":
            if order["journal_id"] is not None:
                return "duplicate"
            if amount_fen != order["amount_fen"]:
                # Never credit an amount we did not ask for; reconciliation shows it to an operator.
                await topups_repository.update_topup(
                    conn, order_no, state=current, at=now, anomaly="amount_mismatch"
                )
                return "amount_mismatch"
            clearing = await self._onecard.system_account(conn, "system:provider_clearing")
            journal = await repository.post_journal(
                conn, "topup", order_no, [(order["wallet_id"], amount_fen), (clearing, -amount_fen)], now
            )
            if journal is None:
                return "duplicate"
            await repository.adjust_wallet(conn, order["wallet_id"], amount_fen, _NO_FLOOR)
            await topups_repository.update_topup(
                conn,
                order_no,
                state="paid",
                at=now,
                provider_txn_id=provider_txn_id,
                paid_at=paid_at or now,
                journal_id=journal,
            )
            await audit.append(
                conn,
                actor=f"payment:{self.payments.name}",
                action="onecard.topup_credited",
                target=f"onecard:{order['onecard_account_id']}",
                details={"order_no": order_no, "amount_fen": amount_fen, "late": current == "expired"},
            )
            return "credited_late" if current == "expired" else "credited"
        if state == "closed":
            if current == "paid":
                await topups_repository.update_topup(
                    conn, order_no, state="paid", at=now, anomaly="closed_after_paid"
                )
                return "conflict"
            if current == "closed":
                return "duplicate"
            await topups_repository.update_topup(conn, order_no, state="closed", at=now)
            return "closed"
        if state == "paying" and current == "pending":
            await topups_repository.update_topup(conn, order_no, state="paying", at=now)
            return "paying"
        return "stale"  # an older state arriving after a newer one: nothing to do

    async def expire(self, conn: asyncpg.Connection) -> int:
        """Close pending orders older than the expiry locally (a late "paid" still credits them)."""
        now = self.clock()
        cutoff = now - dt.timedelta(seconds=self._onecard.config.topup_expiry_s)
        return await topups_repository.expire_topups(conn, cutoff, now)

    async def status(self, conn: asyncpg.Connection, account_id: int, order_no: str) -> asyncpg.Record:
        row = await topups_repository.topup_of_owner(conn, order_no, account_id)
        if row is None:
            raise errors.UnknownOrder()
        return row

    # -- reconciliation ------------------------------------------------------------------------------------------

    async def reconcile(self, day: dt.date) -> ReconciliationReport:
        """Every difference between the provider's bill for `day` (CST) and our ledger, plus ledger integrity."""
        start, end = day_bounds(day)
        try:
            bill = await self.payments.daily_bill(day)
        except ProviderError:
            raise errors.ProviderUnavailable() from None
        async with self._db.connection() as conn:
            ours = await topups_repository.topups_for_reconciliation(
                conn, start, end, [line.order_no for line in bill]
            )
            drift = await repository.wallet_drift(conn)
            unbalanced = await repository.unbalanced_journals(conn, start, end)
            unposted = await repository.rides_unposted(conn, start, end)
        by_no = {r["order_no"]: r for r in ours}
        billed = {line.order_no: line for line in bill}
        mismatches: list[Mismatch] = []
        matched = 0
        for line in bill:
            row = by_no.get(line.order_no)
            if row is None:
                mismatches.append(
                    Mismatch("unknown_order", line.order_no, line.amount_fen, None, "paid at the provider")
                )
            elif row["credited_fen"] == 0:
                mismatches.append(
                    Mismatch("missing_credit", line.order_no, line.amount_fen, 0, f"order {row['state']}")
                )
            elif row["credited_fen"] != line.amount_fen:
                mismatches.append(
                    Mismatch("amount_mismatch", line.order_no, line.amount_fen, row["credited_fen"])
                )
            else:
                matched += 1
        ledger_count = ledger_total = 0
        for row in ours:
            paid_today = row["paid_at"] is not None and start <= row["paid_at"] < end
            if row["credited_fen"] and paid_today:
                ledger_count += 1
                ledger_total += row["credited_fen"]
                if row["order_no"] not in billed:
                    mismatches.append(
                        Mismatch(
                            "missing_at_provider", row["order_no"], None, row["credited_fen"], "credited here"
                        )
                    )
            if row["anomaly"]:
                mismatches.append(
                    Mismatch(
                        "notification_anomaly", row["order_no"], None, row["credited_fen"], row["anomaly"]
                    )
                )
        for w in drift:
            mismatches.append(
                Mismatch(
                    "wallet_drift",
                    None,
                    None,
                    int(w["balance_fen"]),
                    f"{w['code']}: postings {w['postings_fen']}",
                )
            )
        for j in unbalanced:
            mismatches.append(
                Mismatch("journal_unbalanced", None, None, int(j["total"]), f"journal {j['journal_id']}")
            )
        for r in unposted:
            mismatches.append(
                Mismatch(
                    "rides_unposted",
                    None,
                    None,
                    int(r["posted_fen"]),
                    f"journal {r['journal_id']}, wallet {r['wallet']}: settled rides {r['rides_fen']}",
                )
            )
        return ReconciliationReport(
            date=day,
            provider=self.payments.name,
            provider_count=len(bill),
            provider_total_fen=sum(line.amount_fen for line in bill),
            ledger_count=ledger_count,
            ledger_total_fen=ledger_total,
            matched=matched,
            mismatches=mismatches,
        )
