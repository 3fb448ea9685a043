"""Boarding: the bus terminal scans the rider's code; the ride is priced by the fare engine (concession,
transfer, caps, in ride-time order) and charged once, or an offline ride's difference given back. A rider's rides
are recorded in turn, so each is priced seeing the others however many terminals deliver them at once."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

from clearing import record_partner_ride
from common import PARTNERS, app, carried_in, month_rides, rider_of, schedule, yuan
from partner_tapoff import partner_tap_off
from tapoff import WINDOW, kept_taps, pending_for, ride_of, stops_known, tap_off
from yima_sdk import Context, ScanEvent, VersionConflict
from yima_sdk.cron import COUNTY_TIME
from yima_sdk.fares import FareError, PricedRide, Ride, Rider, price_rides

CATEGORY_NAMES = {
    "senior_60": "60-69岁半价 aged 60-69",
    "senior_70": "70岁以上免费 aged 70+",
    "student": "学生半价 student",
    "disability": "残疾人免费 disability card",
    "veteran": "优抚对象免费 veteran",
}


NOT_RECORDED = ["乘车未记录 请重新扫码", "Ride not recorded: scan again"]
TURNS = 10
"""How often a boarding is priced again because another ride of the rider's month was recorded meanwhile (each
try that loses lets another ride in, so this many rides arriving at once are each priced in turn)."""


@app.on_scan("bus")
async def board(ctx: Context, event: ScanEvent) -> dict[str, Any] | None:
    unit = event.data.unit or ""
    if not unit.startswith("line:"):
        return {"lines": ["终端未绑定线路 This terminal serves no line"], "admit": False}
    issuer = event.data.issuer
    holder_ref = event.data.holder_ref
    if event.data.tap == "off" and event.user_id is None and issuer in PARTNERS and holder_ref is not None:
        # a partner county's rider: their boarding found by the code's pseudonym (partner_tapoff.py)
        return await partner_tap_off(ctx, event, unit.removeprefix("line:"), holder_ref)
    if event.data.tap == "off":  # 下车刷卡: the ride re-priced by stops travelled (tapoff.py)
        return await tap_off(ctx, event, unit.removeprefix("line:"))
    if event.user_id is None and issuer is not None and issuer in PARTNERS:
        return await partner_ride(ctx, event, unit.removeprefix("line:"), issuer)
    if event.user_id is None:
        return {"lines": ["请先开通一码乘车 Open 一码乘车 once to ride"], "admit": False}
    at = (event.data.scanned_at or dt.datetime.now(dt.UTC)).astimezone(COUNTY_TIME)
    ride = Ride(ride_id=event.data.scan_id, at=at, line=unit.removeprefix("line:"), board=event.data.stop)
    for _ in range(TURNS - 1):
        with contextlib.suppress(VersionConflict):  # another ride of the month came first: price it again
            return await ride_once(ctx, event, event.user_id, ride)
    try:
        return await ride_once(ctx, event, event.user_id, ride)
    except VersionConflict:
        if event.data.mode != "online":
            raise  # an uploaded ride: a failed try, the platform's outbox delivers the scan again later
    # An online boarding reaches the app once: nothing delivers it again, so the terminal must not let an
    # unrecorded, unpaid ride through. Nothing was recorded or charged; the rider scans again.
    await ctx.log.warning("ride not recorded", scan=ride.ride_id, reason="rider's month busy")
    return {"lines": NOT_RECORDED, "admit": False}


async def ride_once(ctx: Context, event: ScanEvent, user_id: str, ride: Ride) -> dict[str, Any]:
    """Record the ride (VersionConflict when another ride of the rider's month, or this scan's other delivery,
    was recorded meanwhile) and charge it, or give back what settlement took above its price; a ride recorded
    already is charged or given back what it was recorded with."""
    ride_id = ride.ride_id
    existing = await ctx.db.get("rides", ride_id)
    if existing is not None:  # the scan delivered again: the same ride, charged once
        value = {"id": ride_id, **existing.value}
        if value["fare_fen"] and value["mode"] == "online" and not value.get("payment_id"):
            await charge(ctx, ride_id, value, existing.version)
        elif value["mode"] == "offline":
            await give_back(ctx, ride_id, value, existing.version, event.data.payment_id)
        return {"lines": ride_lines(value)}
    try:
        value = await record(ctx, event, user_id, ride)
    except FareError as exc:
        await ctx.log.warning("ride not priced", scan=ride_id, reason=str(exc))
        return {"lines": ["票价未配置 No fare for this line"], "admit": False}
    if value["fare_fen"] and event.data.mode == "online":  # the ride is at version 1, just inserted
        value = await charge(ctx, ride_id, value, 1)
    elif event.data.mode == "offline":
        await give_back(ctx, ride_id, value, 1, event.data.payment_id)
    return {"lines": ride_lines(value)}


async def record(ctx: Context, event: ScanEvent, user_id: str, ride: Ride) -> dict[str, Any]:
    """Price the ride with the month's rides recorded before it and record it, in the rider's turn: the month's
    document (`rider_months`, `<rider>.<month>`) is read and written in the same commit as the ride, so of two
    rides of one rider priced side by side (two terminals' uploads delivered at once, an upload beside a
    boarding) only one is recorded; the other's commit fails with VersionConflict, and priced again it sees the
    first. Once recorded, what the ride is charged or given back is decided."""
    month = ride.at.strftime("%Y-%m")
    turn_id = f"{user_id}.{month}"
    async with ctx.db.transaction() as tx:
        turn = await tx.get("rider_months", turn_id)
        # read after the turn: a tap-off kept meanwhile (tapoff.py writes the turn with it) fails this commit
        taps = await kept_taps(ctx, user_id, ride.line) if ride.board is not None else []
        recorded = await month_rides(ctx, user_id, month)
        known = list(map(ride_of, recorded))
        fares, rider = await schedule(ctx), await rider_of(ctx, user_id)
        was = known  # the month as it stood: what the ride adds is priced against it
        # A tap-off delivered before its boarding (kept by tapoff.py): the ride is priced with both stops now.
        tap = pending_for(taps, ride, known)
        if tap is not None and stops_known(fares, ride.line, ride.at, ride.board, tap["stop"]):
            kept = await tx.get(
                "taps", tap["id"]
            )  # still waiting: another boarding did not take it meanwhile
            if kept is None or kept.value["status"] != "pending":
                raise VersionConflict("the kept tap-off was taken meanwhile")
            ride = Ride(
                ride_id=ride.ride_id, at=ride.at, line=ride.line, board=ride.board, alight=tap["stop"]
            )
            tx.update("taps", tap["id"], {**kept.value, "status": "applied", "ride": ride.ride_id},
                      expected_version=kept.version)  # fmt: skip
            tx.insert("alights", {
                "user_id": user_id, "month": month, "line": ride.line, "board": ride.board, "alight": tap["stop"],
                "at": tap["at"], "scan": tap["id"], "off_fen": 0, "status": "done", "at_boarding": True,
            }, id=ride.ride_id)  # fmt: skip
        elif ride.board is not None:
            # A tap-off after this boarding that closed an earlier ride of the line (this boarding was uploaded
            # after it): it was this ride's. Moved here, the earlier ride pays its top stage again; what that costs
            # more is part of what this ride adds, so this ride's charge (its give-back, key `ride:<scan>`) makes
            # the correction, and what the earlier ride's tap-off gave back stays given.
            moved = closed_across(recorded, ride)
            if moved is not None and stops_known(fares, ride.line, ride.at, ride.board, moved["alight"]):
                ride, known = await move_tap_off(tx, user_id, month, ride, moved, known)
        # The month before's last rides price nothing here but may make this month's first boarding a transfer.
        start = ride.at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        earlier = list(map(ride_of, await carried_in(ctx, user_id, start)))
        priced = price_rides(fares, rider, [*earlier, *known, ride])
        (mine,) = (p for p in priced if p.ride_id == ride.ride_id)
        # What the ride adds to the month priced in ride-time order: its own price when it comes last (a
        # boarding, an upload in order); an offline ride uploaded after the rider's later rides were charged also
        # changes what those cost (the transfer or cap they missed without it), so the month costs what it would
        # have online. Never below nothing, never above the table's fare: what settlement charged for an offline
        # ride (nothing is asked for later).
        without = sum(p.fare_fen for p in price_rides(fares, rider, [*earlier, *was]))
        added = sum(p.fare_fen for p in priced) - without
        if event.data.mode == "offline":
            ceiling = event.data.settled_fen if event.data.settled_fen is not None else added
        else:
            ceiling = mine.base_fen + mine.peak_fen
        fare = max(0, min(added, ceiling))
        value = ride_value(user_id, mine, event, month, fare)
        tx.insert("rides", value, id=ride.ride_id)
        mark = {"user_id": user_id, "month": month, "rides": 1 + (0 if turn is None else turn.value["rides"])}
        if turn is None:
            tx.insert("rider_months", mark, id=turn_id)
        else:
            tx.update("rider_months", turn_id, mark, expected_version=turn.version)
    return value


def closed_across(recorded: list[dict[str, Any]], ride: Ride) -> dict[str, Any] | None:
    """The rider's ride of `ride`'s line, boarded before it, whose tap-off came after it (within the window)."""
    for r in recorded:
        at = dt.datetime.fromisoformat(r["at"])
        if r["line"] == ride.line and r["alight"] is not None and at < ride.at:
            alighted = dt.datetime.fromisoformat(r["alighted_at"])
            if ride.at < alighted <= ride.at + WINDOW:  # at the same instant: the earlier ride's
                return r
    return None


async def move_tap_off(
    tx: Any, user_id: str, month: str, ride: Ride, moved: dict[str, Any], known: list[Ride]
) -> tuple[Ride, list[Ride]]:
    """Move the tap-off of the earlier ride `moved` to `ride` (in the boarding's commit): the ride priced with
    its alighting stop, the earlier one without (its `alights` document kept, `alight` None, `moved_to`)."""
    alight = await tx.get("alights", moved["id"])
    assert alight is not None  # month_rides found it
    tap = await tx.get("taps", alight.value["scan"])
    tx.update("alights", moved["id"], {**alight.value, "alight": None, "moved_to": ride.ride_id},
              expected_version=alight.version)  # fmt: skip
    if tap is not None:
        tx.update("taps", tap.id, {**tap.value, "ride": ride.ride_id}, expected_version=tap.version)
    tx.insert("alights", {
        "user_id": user_id, "month": month, "line": ride.line, "board": ride.board, "alight": moved["alight"],
        "at": alight.value["at"], "scan": alight.value["scan"], "off_fen": 0, "status": "done", "at_boarding": True,
        "moved_from": moved["id"],
    }, id=ride.ride_id)  # fmt: skip
    closed = Ride(ride_id=ride.ride_id, at=ride.at, line=ride.line, board=ride.board, alight=moved["alight"])
    reopened = [
        Ride(ride_id=k.ride_id, at=k.at, line=k.line, board=k.board) if k.ride_id == moved["id"] else k
        for k in known
    ]
    return closed, reopened


async def partner_ride(ctx: Context, event: ScanEvent, line: str, issuer: int) -> dict[str, Any]:
    """A partner county's code (一卡通行): the rider is not known here, so the full fare of the table, without
    concessions, transfers or caps; not charged here: the partner county owes it (the daily clearing report)."""
    ride_id = event.data.scan_id
    existing = await ctx.db.get("rides", ride_id)
    if existing is None:
        at = (event.data.scanned_at or dt.datetime.now(dt.UTC)).astimezone(COUNTY_TIME)
        try:
            (priced,) = price_rides(await schedule(ctx), Rider(), [Ride(ride_id=ride_id, at=at, line=line)])
        except FareError as exc:
            await ctx.log.warning("ride not priced", scan=ride_id, reason=str(exc))
            return {"lines": ["票价未配置 No fare for this line"], "admit": False}
        value = ride_value(None, priced, event, at.strftime("%Y-%m"))
        try:
            await record_partner_ride(ctx, ride_id, value, issuer)  # owed on the next clearing report
        except VersionConflict:
            pass  # the same scan recorded by another delivery a moment ago
    else:
        value = existing.value
    return {"lines": [*ride_lines(value), f"一卡通行 {PARTNERS[issuer]}"]}


def ride_value(
    user_id: str | None, p: PricedRide, event: ScanEvent, month: str, fare_fen: int | None = None
) -> dict[str, Any]:
    """The ride as recorded; `fare_fen`, when given, is what it added to the month in ride-time order (a ride
    recorded after the rider's later rides: `reordered_off_fen` is its own price less that, negative when it cost
    a later ride its transfer)."""
    fare = p.fare_fen if fare_fen is None else fare_fen
    local = p.at.astimezone(COUNTY_TIME)
    return {
        "user_id": user_id, "month": month, "day": local.date().isoformat(), "at": local.isoformat(),
        "line": p.line, "board": event.data.stop, "terminal": event.terminal_id, "mode": event.data.mode,
        "credential_type": event.data.credential_type, "issuer": event.data.issuer,
        # a partner county's rider: their code's pseudonym here, which their tap-off finds the ride by
        "holder_ref": event.data.holder_ref if user_id is None else None,
        "table_version": p.table_version,
        "base_fen": p.base_fen, "peak_fen": p.peak_fen, "concession": p.concession,
        "concession_off_fen": p.concession_off_fen, "transfer": p.transfer,
        "transfer_off_fen": p.transfer_off_fen, "cap_off_fen": p.cap_off_fen,
        "reordered_off_fen": p.fare_fen - fare, "fare_fen": fare,
        # An offline ride's payment is settlement's charge (`ride_<scan id>`): what the app gives back from, and
        # what staff refund a disputed fare from.
        "payment_id": event.data.payment_id if event.data.mode == "offline" else None,
        "payment_status": None, "refunded_fen": 0,
        # An offline ride was paid by the platform's settlement (re-priced from the published table), not by this
        # app; what the terminal priced is kept beside it (a platform older than `settled_fen` charged that).
        "terminal_fen": event.data.amount_fen if event.data.mode == "offline" else None,
        "settled_fen": (
            (event.data.settled_fen if event.data.settled_fen is not None else event.data.amount_fen)
            if event.data.mode == "offline" else None
        ),
        "returned_fen": 0,
    }  # fmt: skip


async def give_back(
    ctx: Context, ride_id: str, value: dict[str, Any], version: int, payment_id: str | None
) -> None:
    """An offline ride: settlement charged the table's price (the rider unknown to the terminal); the rider's
    own price (concession, transfer, cap) is `fare_fen`. Give the difference back, once: the key is the ride,
    the platform refuses more than settlement charged. Never asks for more: a ride priced above what settlement
    took (it cannot happen with the same table) keeps what was taken."""
    payment_id = payment_id or value.get("payment_id")
    owed = (value.get("settled_fen") or 0) - value["fare_fen"] - value.get("returned_fen", 0)
    if owed <= 0 or payment_id is None:
        return
    done = await ctx.payments.refund(
        payment_id, owed, f"乘车优惠 {value['line']}路 {value['at'][:16]}", idempotency_key=f"ride:{ride_id}"
    )
    stored = {k: v for k, v in value.items() if k != "id"}
    stored["returned_fen"] = stored.get("returned_fen", 0) + done.amount_fen
    stored["payment_id"] = payment_id  # a ride recorded before payment ids were kept learns it here
    try:
        await ctx.db.update("rides", ride_id, stored, expected_version=version)
    except VersionConflict:
        pass  # recorded by the other delivery of this ride, with the same refund (same key)


async def charge(ctx: Context, ride_id: str, value: dict[str, Any], version: int) -> dict[str, Any]:
    """Charge the ride's fare to the rider's one-card, once: the key is the ride (the scan)."""
    payment = await ctx.payments.charge(
        value["fare_fen"], f"公交 {value['line']}路 {value['at'][:16]}", idempotency_key=f"ride:{ride_id}"
    )
    value = {**value, "payment_id": payment.id, "payment_status": payment.status}
    stored = {k: v for k, v in value.items() if k != "id"}
    try:
        await ctx.db.update("rides", ride_id, stored, expected_version=version)
    except VersionConflict:
        pass  # recorded by the other delivery of this scan, with the same payment (same key)
    return value


def ride_lines(value: dict[str, Any]) -> list[str]:
    lines = [f"{value['line']}路 ¥{yuan(value['fare_fen'])}"]
    if value["concession"]:
        lines.append(CATEGORY_NAMES.get(value["concession"], value["concession"]))
    if value["transfer"]:
        lines.append(f"换乘优惠 transfer -¥{yuan(value['transfer_off_fen'])}")
    if value["cap_off_fen"]:
        lines.append("已达封顶 fare cap reached")
    reordered = value.get("reordered_off_fen", 0)
    if reordered:
        sign = "-" if reordered > 0 else "+"
        lines.append(f"按乘车时间重算 in ride order {sign}¥{yuan(abs(reordered))}")
    return lines
