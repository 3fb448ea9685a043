"""Cancelling tickets and route orders, and releasing unpaid tickets: each state change one function, the money
settled exactly once whichever runs it (the visitor's retried DELETE, a slot's closing, the sweep job).

    booked --begin_cancel--> cancelling --finish_cancel--> cancelled     (the price refunded, the pass revoked,
                                                                          dropped from the offline gates)
    booked --release_unpaid--> released                                  (unpaid after PAY_WITHIN: not charged)

`cancelling` is the refund owed, written before any money moves: if revoking or refunding fails half-way, the
next try (a retried DELETE, the sweep every 5 minutes) finishes it; the refund's idempotency key names the
ticket and its number, so it is paid once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from common import app
from gate_lists import drop_from_gates
from yima_sdk import Context, JobEvent, QuotaExceeded, Record, VersionConflict, YimaError

PAY_WITHIN = dt.timedelta(minutes=15)
"""The payment window: a ticket with a price not paid 15 minutes after it was reserved gives its places back."""


async def begin_cancel(ctx: Context, collection: str, record: Record, reason: str) -> Record:
    """booked -> cancelling, in one commit with the places given back (a ticket). Raises VersionConflict if the
    ticket or order changed since `record` was read."""
    value = {**record.value, "status": "cancelling", "cancel_reason": reason, "hold_until": None}
    async with ctx.db.transaction() as tx:
        tx.update(collection, record.id, value, expected_version=record.version)
        if collection == "tickets":
            tx.counter_add(f"taken:{value['slot']}", -value["people"], min=0)
    return Record(id=record.id, value=value, version=tx.results[0])


async def finish_cancel(ctx: Context, collection: str, record: Record) -> int:
    """cancelling -> cancelled: the pass revoked, an unconfirmed charge withdrawn or a paid one refunded; the
    fen refunded. Safe to run again, or at once from two places: the revocation, the withdrawal and the refund
    (its key) are idempotent and only one commit of `cancelled` wins."""
    for _ in range(5):
        value = record.value
        if value["status"] == "cancelled":
            return int(value.get("refunded_fen", 0))
        await drop_from_gates(ctx, collection, value)  # the offline gates forget it at their next sync
        if value["pass"]:
            await ctx.credentials.revoke_pass(value["pass"]["id"])
        refunded = 0
        if value["payment_id"] is not None:
            key = f"cancel.{record.id}.{value['number']}"
            refunded = await withdraw(ctx, value["payment_id"], key)
        try:
            await ctx.db.update(collection, record.id, {**value, "status": "cancelled", "refunded_fen": refunded},
                                expected_version=record.version)  # fmt: skip
        except VersionConflict:  # finished meanwhile by another run: read what it recorded
            fresh = await ctx.db.get(collection, record.id)
            if fresh is None:
                return refunded
            record = fresh
            continue
        if value.get("cancel_reason") == "slot_closed":
            await _tell_closed(ctx, value, refunded)
        return refunded
    raise VersionConflict(f"{collection}/{record.id} kept changing while it was cancelled")


async def withdraw(ctx: Context, payment_id: str, key: str) -> int:
    """Take back a charge: withdrawn if the visitor has not confirmed it (their confirmation is then refused),
    refunded in full under `key` if they paid first. The fen refunded."""
    payment = await ctx.payments.cancel(payment_id)
    if payment.status != "succeeded":
        return 0
    done = await ctx.payments.refund(
        payment.id, payment.amount_fen, "退票 ticket cancelled", idempotency_key=key
    )
    return int(done.amount_fen)


async def release_unpaid(ctx: Context, record: Record) -> str:
    """A ticket still unpaid at the end of its payment window: its charge withdrawn first, then either it was
    paid meanwhile (kept: `paid`) or its places go back (`released`, nothing charged). The charge decides,
    atomically on the platform: a confirmation that comes after the withdrawal is refused."""
    for _ in range(5):
        value = record.value
        if value["status"] != "booked" or value.get("hold_until") is None:
            return str(value["status"])
        paid = value["paid"]
        if not paid and value["payment_id"] is not None:
            paid = (await ctx.payments.cancel(value["payment_id"])).status == "succeeded"
        try:
            async with ctx.db.transaction() as tx:
                if paid:
                    tx.update("tickets", record.id, {**value, "paid": True, "hold_until": None},
                              expected_version=record.version)  # fmt: skip
                else:
                    tx.update("tickets", record.id, {**value, "status": "released", "hold_until": None},
                              expected_version=record.version)  # fmt: skip
                    tx.counter_add(f"taken:{value['slot']}", -value["people"], min=0)
        except VersionConflict:  # a new charge asked for, a cancel: decide again on what is there now
            fresh = await ctx.db.get("tickets", record.id)
            if fresh is None:
                return "gone"
            record = fresh
            continue
        if paid:
            return "paid"
        if value["pass"]:
            await ctx.credentials.revoke_pass(value["pass"]["id"])
        return "released"
    return "busy"


async def _tell_closed(ctx: Context, value: dict[str, Any], refunded: int) -> None:
    """The visitor learns why their ticket went (at most 20 messages a day reach one visitor from an app)."""
    money = f"已退款 {refunded / 100:.2f} 元 refunded." if refunded else "未扣款 Nothing was charged."
    body = (f"{value['spot_name']} {value['day']} {value['start']}-{value['end']} 时段已关闭，门票已取消。"
            f" The slot was closed and your ticket cancelled. {money}")  # fmt: skip
    try:
        await ctx.notify.send("门票已取消 Ticket cancelled", body, user_id=value["user_id"])
    except QuotaExceeded:
        await ctx.log.warning("closed-slot notice not sent: the visitor's daily messages are used up")


# ---- the sweep: payment windows that ended, and cancels that did not finish ---------------------------------


SWEEP_BATCH = 25
"""Tickets or orders one run of the sweep settles of each kind (a run has the call's deadline); a full batch
asks for another run at once."""


@app.job("sweep")
async def sweep(ctx: Context, job: JobEvent) -> None:
    """Every 5 minutes ([jobs] in miniapp.toml): unpaid tickets past their window released, and tickets and
    orders left `cancelling` (a refund that failed) finished. Reckoned from the job's own time; one that fails
    is logged and tried again by the next run."""
    now = int((job.scheduled_at or dt.datetime.now(dt.UTC)).timestamp())
    expired = await ctx.db.find("tickets", {"hold_until": {"gte": 0, "lte": now}}, limit=SWEEP_BATCH)
    work = [("release", "tickets", r) for r in expired.items]
    for collection in ("tickets", "orders"):
        owed = await ctx.db.find(collection, {"status": "cancelling"}, limit=SWEEP_BATCH)
        work += [("finish", collection, r) for r in owed.items]
    failed = 0
    for action, collection, record in work:
        try:
            if action == "release":
                await release_unpaid(ctx, record)
            else:
                await finish_cancel(ctx, collection, record)
        except YimaError as exc:
            failed += 1
            await ctx.log.warning("sweep: not settled yet", kind=collection, action=action, code=exc.code)
    if not failed and len(work) >= SWEEP_BATCH:  # maybe more: another run now, not in 5 minutes
        await ctx.jobs.schedule(dt.timedelta(0), "sweep", {}, key=f"{job.job_id}.more")
