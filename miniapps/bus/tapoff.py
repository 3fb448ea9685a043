"""Tapping off (下车刷卡) on a staged line (分段计价): a boarding is charged the line's top stage, since the rider has
not said where they get off; a tap-off at the stop where they get off re-prices the ride by stops travelled and
gives back the difference, once. A rider who does not tap off pays the top stage.

A tap-off (`event.data.tap == "off"`, at `event.data.stop`) finds the rider's open ride: their latest boarding
at or before it, on the same line, within `WINDOW`, from a known stop, not tapped off. Within the rider's turn
(the month's `rider_months` document, as boarding.py records rides) the month is priced twice, with and
without this ride's alighting stop; what it costs less is given back from the ride's payment (key
`alight:<ride>`: once, whichever delivery gets there). The month priced whole keeps the concession, transfer
and caps right: a lower fare that leaves room under a cap costs the later rides what they would have cost.

A tap-off that finds no open ride is kept (`taps`, pending): a bus whose rear door reader uploads before the
front door's may deliver a tap-off before its boarding; the boarding, when it comes, finds it and is priced
with both stops at once (an offline boarding's refund then includes the difference). Kept in the rider's turn
too, so a boarding and its tap-off delivered at once see each other. A tap-off that closed an earlier ride before
its own boarding was uploaded moves to that boarding when it comes (boarding.py `move_tap_off`). A tap-off
charges nothing.

Data: `taps` id = the tap-off's scan id (each handled once: pending, applied or refused); `alights` id = the
ride (one tap-off per ride), its alighting stop and what the tap-off gave back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

from common import PARTNERS, carried_in, month_rides, rider_of, schedule, yuan
from yima_sdk import Context, InvalidArgument, Record, ScanEvent, VersionConflict
from yima_sdk.cron import COUNTY_TIME
from yima_sdk.fares import FareError, FareSchedule, Ride, price_rides

MAX_LINE = 40
"""A terminal shows lines of at most 40 characters (stop ids may be longer)."""
WINDOW = dt.timedelta(hours=3)
"""How long after boarding a tap-off still closes the ride (a county line's longest trip, with waiting)."""
TURNS = 10

NO_BOARDING = ["未找到上车记录 No boarding to tap off", "未扣费 Nothing charged"]
NOT_RECORDED = ["下车未记录 请再刷一次", "Tap-off not recorded: tap again"]


def ride_of(value: dict[str, Any]) -> Ride:
    """A recorded ride as the fare engine prices it: with both stops once tapped off (else the top stage)."""
    return Ride(
        ride_id=value["id"],
        at=dt.datetime.fromisoformat(value["at"]),
        line=value["line"],
        board=value.get("board"),
        alight=value.get("alight"),
    )


def stops_known(fares: FareSchedule, line: str, at: dt.datetime, *stops: str | None) -> bool:
    """Whether each stop is one of the line's in the table in force at `at` (a tap-off re-prices only then)."""
    try:
        known = fares.table_at(at).lines[line].stops
    except (FareError, KeyError):
        return False
    return all(s is not None and s in known for s in stops)


def latest_of(rides: list[dict[str, Any]], at: dt.datetime) -> dict[str, Any] | None:
    """The rider's latest boarding at or before `at`."""
    boarded = [r for r in rides if dt.datetime.fromisoformat(r["at"]) <= at]
    return max(boarded, key=lambda r: (r["at"], r["id"]), default=None)


def open_ride(ride: dict[str, Any], line: str, at: dt.datetime) -> bool:
    """Whether a tap-off on `line` at `at` closes the recorded `ride` (the rider's latest boarding before it)."""
    ride_at = dt.datetime.fromisoformat(ride["at"])
    closed = ride.get("alight") is not None or ride.get("alighted_at") is not None  # a tap-off moved away too
    return ride["line"] == line and not closed and ride_at <= at <= ride_at + WINDOW


def pending_for(taps: list[dict[str, Any]], ride: Ride, known: list[Ride]) -> dict[str, Any] | None:
    """The earliest kept tap-off that closes `ride` (a boarding being recorded): on its line, after it within the
    window, with no other known boarding of the rider between them."""
    for tap in sorted(taps, key=lambda t: t["at"]):
        at = dt.datetime.fromisoformat(tap["at"])
        if tap["line"] == ride.line and ride.at <= at <= ride.at + WINDOW:
            if not any(ride.at < k.at <= at for k in known):
                return tap
    return None


async def kept_taps(ctx: Context, user_id: str, line: str) -> list[dict[str, Any]]:
    page = await ctx.db.find("taps", {"user_id": user_id, "line": line, "status": "pending"}, limit=20)
    return [{"id": r.id, **r.value} for r in page.items]


async def tap_off(ctx: Context, event: ScanEvent, line: str) -> dict[str, Any]:
    """The tap-off scan: the rider's open ride re-priced and the difference given back, once."""
    user_id = event.user_id
    if user_id is None:
        issuer = event.data.issuer
        if issuer in PARTNERS:  # named by no pseudonym (partner_tapoff.py): the ride keeps its fare
            return {"lines": ["一卡通行 按全程计价 Partner: full fare"]}
        return {"lines": ["请先开通一码乘车 Open 一码乘车 once to ride"]}
    if event.data.stop is None:
        return {"lines": ["终端未设站点 This terminal names no stop", "未扣费 Nothing charged"]}
    at = (event.data.scanned_at or dt.datetime.now(dt.UTC)).astimezone(COUNTY_TIME)
    for _ in range(TURNS - 1):
        with contextlib.suppress(VersionConflict):  # another ride or tap of the rider came first: again
            return await tap_once(ctx, event, user_id, line, at)
    try:
        return await tap_once(ctx, event, user_id, line, at)
    except VersionConflict:
        if event.data.mode != "online":
            raise  # the platform's outbox delivers the upload again later
    await ctx.log.warning("tap-off not recorded", scan=event.data.scan_id, reason="rider's month busy")
    return {"lines": NOT_RECORDED}


async def tap_once(
    ctx: Context, event: ScanEvent, user_id: str, line: str, at: dt.datetime
) -> dict[str, Any]:
    scan_id, stop = event.data.scan_id, event.data.stop
    assert stop is not None
    earlier = await ctx.db.get("taps", scan_id)
    if earlier is not None:  # this tap-off delivered again: its ride's refund finished, once
        if earlier.value["status"] != "applied":
            return {"lines": NO_BOARDING}
        return await settle(ctx, earlier.value["ride"])
    months = sorted({at.strftime("%Y-%m"), (at - WINDOW).strftime("%Y-%m")})
    mine = [r for month in months for r in await month_rides(ctx, user_id, month)]
    latest = latest_of(mine, at)
    fares = await schedule(ctx)
    tap = {"user_id": user_id, "line": line, "stop": stop, "at": at.isoformat(), "ride": None}
    if latest is None or not open_ride(latest, line, at):
        # No open ride (yet): kept for a boarding uploaded later; nothing charged. Kept in the rider's turn: the
        # months its ride may be in are read and written in the same commit, so a boarding recorded meanwhile
        # (which looks for kept tap-offs in its own turn) fails this commit, and the tap-off is tried again.
        async with ctx.db.transaction() as tx:
            turns = {month: await tx.get("rider_months", f"{user_id}.{month}") for month in months}
            if latest_of([r for m in months for r in await month_rides(ctx, user_id, m)], at) != latest:
                raise VersionConflict("a boarding was recorded meanwhile")
            for month, turn in turns.items():
                if turn is None:
                    tx.insert("rider_months", {"user_id": user_id, "month": month, "rides": 0, "kept": 1},
                              id=f"{user_id}.{month}")  # fmt: skip
                else:
                    tx.update("rider_months", turn.id, {**turn.value, "kept": turn.value.get("kept", 0) + 1},
                              expected_version=turn.version)  # fmt: skip
            tx.insert("taps", {**tap, "status": "pending"}, id=scan_id)
        return {"lines": NO_BOARDING}
    ride_at = dt.datetime.fromisoformat(latest["at"])
    if not stops_known(fares, line, ride_at, latest.get("board"), stop):
        async with ctx.db.transaction() as tx:
            tx.insert("taps", {**tap, "ride": latest["id"], "status": "refused"}, id=scan_id)
        why = (
            "上车未记站点 Boarding named no stop"
            if latest.get("board") is None
            else "站点未知 Stop not on line"
        )
        return {"lines": [f"{line}路 {why}"[-MAX_LINE:], "按全程计价 Full fare kept"]}
    month = latest["month"]
    turn_id = f"{user_id}.{month}"
    async with ctx.db.transaction() as tx:
        turn = await tx.get("rider_months", turn_id)
        # the ride's own document is read, not written (its payment is boarding.py's): a charge or give-back
        # stored meanwhile fails this commit, and the tap-off is priced again with it
        ride_doc = await tx.get("rides", latest["id"])
        if turn is None or ride_doc is None:  # written with the ride: an open ride always has both
            raise VersionConflict("the rider's month is not recorded yet")
        # a dispute refunded from the ride's payment (fares.py marks its amount before the money moves, and
        # writes the ride's `refunded_fen` after): its amount is not the tap-off's to give back
        dispute = await tx.get("disputes", latest["id"])
        disputed = int(dispute.value.get("refunded_fen") or 0) if disputing(dispute) else 0
        rides = [ride_of(r) for r in await month_rides(ctx, user_id, month)]
        rider = await rider_of(ctx, user_id)
        closed = [
            Ride(ride_id=r.ride_id, at=r.at, line=r.line, board=r.board, alight=stop)
            if r.ride_id == latest["id"]
            else r
            for r in rides
        ]
        # as boarding.py prices the month: after the month before's last rides (a transfer across midnight)
        start = ride_at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        earlier = [ride_of(r) for r in await carried_in(ctx, user_id, start)]
        before = sum(p.fare_fen for p in price_rides(fares, rider, [*earlier, *rides]))
        after = sum(p.fare_fen for p in price_rides(fares, rider, [*earlier, *closed]))
        off = max(0, min(before - after, paid_of(ride_doc.value) - disputed))
        tx.insert("alights", {
            "user_id": user_id, "month": month, "line": line, "board": latest.get("board"), "alight": stop,
            "at": at.isoformat(), "scan": scan_id, "off_fen": off,
            "status": "refunding" if off else "done",
        }, id=latest["id"])  # fmt: skip
        tx.insert("taps", {**tap, "ride": latest["id"], "status": "applied"}, id=scan_id)
        tx.update("rider_months", turn_id, {**turn.value, "taps": turn.value.get("taps", 0) + 1},
                  expected_version=turn.version)  # fmt: skip
    return await settle(ctx, latest["id"])


def disputing(dispute: Record | None) -> bool:
    """Whether a refund of the ride's dispute is marked but not yet counted in the ride's `refunded_fen`."""
    return dispute is not None and dispute.value["status"] == "refunding"


def paid_of(ride: dict[str, Any]) -> int:
    """What the ride's payment holds for this ride: at most what a tap-off can give back."""
    if ride["mode"] == "offline":
        held = (ride.get("settled_fen") or 0) - ride.get("returned_fen", 0)
        return max(0, min(held, int(ride["fare_fen"])) - ride.get("refunded_fen", 0))
    if (
        ride.get("payment_id") is None
    ):  # an online fare never charged (its charge failed): nothing to give back
        return 0
    return max(0, int(ride["fare_fen"]) - ride.get("refunded_fen", 0))


async def settle(ctx: Context, ride_id: str) -> dict[str, Any]:
    """Give back what the tap-off took off the ride, once, and answer the terminal."""
    ride, alight, waiting = await give_back_stops(ctx, ride_id)
    return {"lines": alight_lines(ride, alight, waiting=waiting)}


async def give_back_stops(ctx: Context, ride_id: str) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """The refund a tap-off decided (key `alight:<ride>`: once, whichever delivery or call gets there first);
    the ride, its tap-off, and whether the refund still waits for the rider to confirm the ride's payment."""
    alight = await ctx.db.get("alights", ride_id)
    ride = await ctx.db.get("rides", ride_id)
    assert alight is not None and ride is not None
    value = alight.value
    if value["status"] != "refunding":
        return ride.value, value, False
    payment_id = ride.value.get("payment_id")
    if payment_id is None:  # the boarding's charge is not stored yet: finished at the next delivery
        raise VersionConflict("the ride's payment is not recorded yet")
    try:
        await ctx.payments.refund(
            payment_id, value["off_fen"], f"分段计价 {value['line']}路 下车 {value['alight']}",
            idempotency_key=f"alight:{ride_id}",
        )  # fmt: skip
    except InvalidArgument as exc:
        if (await ctx.payments.status(payment_id)).status == "pending_confirmation":
            # not paid yet (a payment the rider confirms): the rides list finishes it
            await ctx.log.info("tap-off refund waits", ride=ride_id, reason=str(exc))
            return ride.value, value, True
        # refused for good (more than is left of the payment: a disputed fare refunded meanwhile): nothing
        # comes back of the tap-off; it is done, not tried again at every rides list
        await ctx.log.warning("tap-off refund refused", ride=ride_id, reason=str(exc))
        final = {**value, "status": "done", "off_fen": 0, "refused_fen": value["off_fen"]}
        with contextlib.suppress(VersionConflict):
            await ctx.db.update("alights", ride_id, final, expected_version=alight.version)
        return ride.value, final, False
    with contextlib.suppress(VersionConflict):  # finished by the other delivery: the same refund
        await ctx.db.update(
            "alights", ride_id, {**value, "status": "refunded"}, expected_version=alight.version
        )
    return ride.value, {**value, "status": "refunded"}, False


async def finish_refunds(ctx: Context, rides: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rides, with the tap-off refunds that waited for their payment (confirmed since) given back now, once."""
    out = []
    for ride in rides:
        if ride["tapoff_status"] == "refunding" and ride.get("payment_status") != "pending_confirmation":
            with contextlib.suppress(VersionConflict):
                _, alight, _ = await give_back_stops(ctx, ride["id"])
                ride = {**ride, "tapoff_status": alight["status"]}
        out.append(ride)
    return out


def alight_lines(ride: dict[str, Any], alight: dict[str, Any], *, waiting: bool = False) -> list[str]:
    lines = [f"{alight['line']}路 {ride.get('board') or '?'} → {alight['alight']}"[:MAX_LINE]]
    if alight["off_fen"]:
        state = "确认后退 after you confirm" if waiting else "已退 refunded"
        lines.append(f"按站计价 -¥{yuan(alight['off_fen'])} {state}" if waiting else
                     f"按站计价 by stops -¥{yuan(alight['off_fen'])} {state}")  # fmt: skip
    else:
        lines.append("票价不变 Fare unchanged")
    return lines
