"""一码乘车 Bus rides (gov.guangde.bus): fare tables kept by the operator's staff, rides priced and charged when a
bus terminal scans a rider's code, rides and a monthly statement for riders, disputed fares refunded by staff; on
yima_sdk alone, priced by the SDK's fare engine (`yima_sdk.fares`) as terminals price offline rides
(docs/miniapps/bus.md tells each flow).

Data (ctx.db collections, declared with their indexes in miniapp.toml):
    fare_tables  id `v<version>`: one version of the fare table (`yima_sdk.fares.FareTable` as JSON); versions are
                 immutable and take effect at `effective_from`, never in the past, so a ride keeps its price
    rides        id = the platform's scan id (a scan delivered twice is one ride): the priced ride, its payment
    eligibility  concession categories granted by `concessions` staff: `<user>.<category>`, with an expiry
    disputes     id = the ride's id: one per ride, open -> refunded or rejected

Every fare table version is also published to the bus terminals (`ctx.terminals.publish("fares", ...)`): the
platform signs it, terminals sync it with their trust list and price offline ride codes with the version in force.
An offline ride reaches the app after the platform's settlement re-priced it with the version in force when it
happened and charged that once (`ScanData.settled_fen`; `amount_fen` is what the terminal priced): the table's
full fare, since a terminal knows no rider. The app prices it for the rider as an online scan (concession,
transfer, caps, in ride-time order) and gives the difference back at once (`ctx.payments.refund` of the ride's
`payment_id`, key = the ride), so an offline ride costs what it would have online; a terminal price that
settlement corrected is listed for the fares staff (`GET /fares/repriced`).

A bus terminal is registered with the unit of the line it serves (`line:k2`); a scan at it is a boarding of that
line. The terminal does not know where the rider will get off, so a staged line charges its top stage.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import seed
from yima_sdk import App, ConsentDenied, Context, JobEvent, Request, Response, ScanEvent, VersionConflict
from yima_sdk.cron import COUNTY_TIME
from yima_sdk.fares import (
    Eligibility,
    FareError,
    FareSchedule,
    FareTable,
    PricedRide,
    Ride,
    Rider,
    price_rides,
)

app = App()

HOME = 341822
"""Guangde's administrative division code: its residents' rides are charged here, the others' cleared."""
PARTNERS = {
    341821: "郎溪 Langxi",
    330522: "长兴 Changxing",
    330523: "安吉 Anji",
    320481: "溧阳 Liyang",
    320282: "宜兴 Yixing",
    310000: "白茅岭 Baimaoling",  # a Shanghai farm inside Anhui: the console files it under Shanghai's code
}
"""The 一地六县 alliance's other counties (codes on the trust list): their codes ride Guangde's buses."""

CATEGORY_NAMES = {
    "senior_60": "60-69岁半价 aged 60-69",
    "senior_70": "70岁以上免费 aged 70+",
    "student": "学生半价 student",
    "disability": "残疾人免费 disability card",
    "veteran": "优抚对象免费 veteran",
}


class Grant(msgspec.Struct, forbid_unknown_fields=True):
    user_id: str
    category: str
    expires_at: dt.datetime


class Dispute(msgspec.Struct, forbid_unknown_fields=True):
    reason: str


class Decision(msgspec.Struct, forbid_unknown_fields=True):
    note: str = ""
    amount_fen: int | None = None
    """Refund this much (None: the whole fare paid)."""


def problem(status: int, code: str, message: str) -> Response:
    return Response.json({"code": code, "error": message}, status=status)


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


async def schedule(ctx: Context) -> FareSchedule:
    page = await ctx.db.find("fare_tables", limit=100)
    return FareSchedule(msgspec.convert(r.value, FareTable) for r in page.items)


async def rider_of(ctx: Context, user_id: str) -> Rider:
    """The rider's concession facts: a consented birth date, and the eligibility staff granted."""
    try:
        born: dt.date | None = dt.date.fromisoformat(await ctx.user.scope("birth_date"))
    except ConsentDenied:
        born = None
    grants = await ctx.db.find("eligibility", {"user_id": user_id}, limit=20)
    return Rider(
        birth_date=born,
        eligibilities=tuple(
            Eligibility(
                category=g.value["category"], expires_at=dt.datetime.fromisoformat(g.value["expires_at"])
            )
            for g in grants.items
        ),
    )


async def month_rides(ctx: Context, user_id: str, month: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = None
    while True:
        page = await ctx.db.find(
            "rides", {"user_id": user_id, "month": month}, order_by="at", limit=100, after=after
        )
        out.extend({"id": r.id, **r.value} for r in page.items)
        after = page.cursor
        if after is None:
            return out


def ride_of(value: dict[str, Any]) -> Ride:
    return Ride(ride_id=value["id"], at=dt.datetime.fromisoformat(value["at"]), line=value["line"])


# ---- boarding: the bus terminal scans the rider's code ---------------------------------------------------


@app.on_scan("bus")
async def board(ctx: Context, event: ScanEvent) -> dict[str, Any] | None:
    unit = event.data.unit or ""
    if not unit.startswith("line:"):
        return {"lines": ["终端未绑定线路 This terminal serves no line"]}
    issuer = event.data.issuer
    if event.user_id is None and issuer is not None and issuer in PARTNERS:
        return await partner_ride(ctx, event, unit.removeprefix("line:"), issuer)
    if event.user_id is None:
        return {"lines": ["请先开通一码乘车 Open 一码乘车 once to ride"]}
    ride_id = event.data.scan_id
    existing = await ctx.db.get("rides", ride_id)
    if existing is not None:  # the scan delivered again: the same ride, charged once
        value = {"id": ride_id, **existing.value}
        if value["fare_fen"] and value["mode"] == "online" and not value.get("payment_id"):
            await charge(ctx, ride_id, value, existing.version)
        elif value["mode"] == "offline":
            await give_back(ctx, ride_id, value, existing.version, event.data.payment_id)
        return {"lines": ride_lines(value)}
    at = (event.data.scanned_at or dt.datetime.now(dt.UTC)).astimezone(COUNTY_TIME)
    ride = Ride(ride_id=ride_id, at=at, line=unit.removeprefix("line:"))
    month = at.strftime("%Y-%m")
    known = await month_rides(ctx, event.user_id, month)
    try:
        fares, rider = await schedule(ctx), await rider_of(ctx, event.user_id)
        priced = price_rides(fares, rider, [*map(ride_of, known), ride])
        without = price_rides(fares, rider, list(map(ride_of, known))) if event.data.mode == "offline" else []
    except FareError as exc:
        await ctx.log.warning("ride not priced", scan=ride_id, reason=str(exc))
        return {"lines": ["票价未配置 No fare for this line"]}
    (mine,) = (p for p in priced if p.ride_id == ride_id)
    fare = mine.fare_fen
    if event.data.mode == "offline":
        # What the ride adds to the month priced in ride-time order: its own price when it came in order, and,
        # uploaded after the rider's later rides were charged, also what those rides now cost more or less
        # with it before them (the transfer or cap they missed without it), so the month costs what it would
        # have online. Never below nothing, never above what settlement charged (nothing is asked for later).
        added = sum(p.fare_fen for p in priced) - sum(p.fare_fen for p in without)
        settled = event.data.settled_fen if event.data.settled_fen is not None else added
        fare = max(0, min(added, settled))
    value = ride_value(event.user_id, mine, event, month, fare)
    try:
        record = await ctx.db.insert("rides", value, id=ride_id)
    except VersionConflict:  # the same scan on another worker a moment ago
        record = await ctx.db.get("rides", ride_id)
        assert record is not None
        return {"lines": ride_lines({"id": ride_id, **record.value})}
    if value["fare_fen"] and event.data.mode == "online":
        value = await charge(ctx, ride_id, value, record.version)
    elif event.data.mode == "offline":
        await give_back(ctx, ride_id, value, record.version, event.data.payment_id)
    return {"lines": ride_lines(value)}


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
            return {"lines": ["票价未配置 No fare for this line"]}
        value = ride_value(None, priced, event, at.strftime("%Y-%m"))
        try:
            await ctx.db.insert("rides", value, id=ride_id)
        except VersionConflict:
            pass  # the same scan recorded by another delivery a moment ago
    else:
        value = existing.value
    return {"lines": [*ride_lines(value), f"一卡通行 {PARTNERS[issuer]}"]}


def ride_value(
    user_id: str | None, p: PricedRide, event: ScanEvent, month: str, fare_fen: int | None = None
) -> dict[str, Any]:
    """The ride as recorded; `fare_fen`, when given, is what it added to the month in ride-time order (an offline
    ride uploaded late: `reordered_off_fen` is its own price less that, negative when it cost a later ride its
    transfer)."""
    fare = p.fare_fen if fare_fen is None else fare_fen
    local = p.at.astimezone(COUNTY_TIME)
    return {
        "user_id": user_id, "month": month, "day": local.date().isoformat(), "at": local.isoformat(),
        "line": p.line, "terminal": event.terminal_id, "mode": event.data.mode,
        "credential_type": event.data.credential_type, "issuer": event.data.issuer,
        "table_version": p.table_version,
        "base_fen": p.base_fen, "peak_fen": p.peak_fen, "concession": p.concession,
        "concession_off_fen": p.concession_off_fen, "transfer": p.transfer,
        "transfer_off_fen": p.transfer_off_fen, "cap_off_fen": p.cap_off_fen,
        "reordered_off_fen": p.fare_fen - fare, "fare_fen": fare,
        "payment_id": None, "payment_status": None, "refunded_fen": 0,
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
    owed = (value.get("settled_fen") or 0) - value["fare_fen"] - value.get("returned_fen", 0)
    if owed <= 0 or payment_id is None:
        return
    done = await ctx.payments.refund(
        payment_id, owed, f"乘车优惠 {value['line']}路 {value['at'][:16]}", idempotency_key=f"ride:{ride_id}"
    )
    stored = {k: v for k, v in value.items() if k != "id"}
    stored["returned_fen"] = stored.get("returned_fen", 0) + done.amount_fen
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


# ---- riders: lines, rides, the monthly statement, disputes ------------------------------------------------


@app.get("/lines")
async def lines(ctx: Context, request: Request) -> Response:
    try:
        table = (await schedule(ctx)).table_at(dt.datetime.now(dt.UTC))
    except FareError:
        return problem(404, "bus.no_fare_table", "no fare table is in force yet")
    return Response.json(msgspec.to_builtins(table))


@app.get("/me")
async def me(ctx: Context, request: Request) -> Response:
    """The rider's id in this app (shown at the counter for a concession grant) and their concessions."""
    user_id = await ctx.user.id()
    grants = await ctx.db.find("eligibility", {"user_id": user_id}, limit=20)
    concessions = [
        {"category": g.value["category"], "expires_at": g.value["expires_at"]} for g in grants.items
    ]
    return Response.json({"user_id": user_id, "concessions": concessions})


async def with_payments(ctx: Context, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rides with their payments' current status (the rider confirms a fare in the shell after the ride)."""
    out = []
    for ride in found:
        if ride["payment_status"] == "pending_confirmation":
            payment = await ctx.payments.status(ride["payment_id"])
            if payment.status != ride["payment_status"]:
                ride = {**ride, "payment_status": payment.status}
                record = await ctx.db.get("rides", ride["id"])
                if record is not None:
                    try:
                        stored = {**record.value, "payment_status": payment.status}
                        await ctx.db.update("rides", ride["id"], stored, expected_version=record.version)
                    except VersionConflict:
                        pass  # refreshed by another call a moment ago
        out.append(ride)
    return out


@app.get("/rides")
async def rides(ctx: Context, request: Request) -> Response:
    month = request.query.get("month") or dt.datetime.now(COUNTY_TIME).strftime("%Y-%m")
    found = await with_payments(ctx, await month_rides(ctx, await ctx.user.id(), month))
    return Response.json({"month": month, "rides": found})


@app.get("/statement")
async def statement(ctx: Context, request: Request) -> Response:
    """The month's totals: what the rides would have cost, what each discount took off, what was paid."""
    month = request.query.get("month") or dt.datetime.now(COUNTY_TIME).strftime("%Y-%m")
    found = await with_payments(ctx, await month_rides(ctx, await ctx.user.id(), month))
    total = {k: sum(r.get(k, 0) for r in found) for k in (
        "base_fen", "peak_fen", "concession_off_fen", "transfer_off_fen", "cap_off_fen", "reordered_off_fen",
        "fare_fen", "refunded_fen", "returned_fen")}  # fmt: skip
    # Paid: fares whose payment succeeded, and what offline settlement took; to confirm: fares still asked.
    paid = sum(r["fare_fen"] for r in found if r["payment_status"] == "succeeded")
    paid += sum((r.get("settled_fen") or 0) - r.get("returned_fen", 0) for r in found)
    pending = sum(r["fare_fen"] for r in found if r["payment_status"] == "pending_confirmation")
    return Response.json({
        "month": month, "rides": len(found), "transfers": sum(1 for r in found if r["transfer"]),
        **total, "paid_fen": paid - total["refunded_fen"], "pending_fen": pending,
    })  # fmt: skip


@app.post("/rides/{ride}/dispute")
async def dispute(ctx: Context, request: Request) -> Response:
    body = request.json(Dispute)
    user_id = await ctx.user.id()
    ride = await ctx.db.get("rides", request.path_params["ride"])
    if ride is None or ride.value["user_id"] != user_id:
        return problem(404, "bus.ride_not_found", "no such ride of yours")
    value = {
        "user_id": user_id,
        "status": "open",
        "reason": body.reason[:500],
        "fare_fen": ride.value["fare_fen"],
    }
    try:
        await ctx.db.insert("disputes", value, id=ride.id)
    except VersionConflict:
        return problem(409, "bus.already_disputed", "this ride's fare is disputed already")
    return Response.json({"ride": ride.id, **value}, status=201)


# ---- staff: fare tables, concessions, disputes ------------------------------------------------------------


@app.put("/fares/tables/{version}")
async def put_table(ctx: Context, request: Request) -> Response:
    try:
        table = FareTable.from_json(request.body)
    except FareError as exc:
        return problem(400, "bus.bad_fare_table", str(exc))
    if str(table.version) != request.path_params["version"]:
        return problem(400, "bus.version_mismatch", "the body's version is not the path's")
    if table.effective_from < dt.datetime.now(dt.UTC):
        return problem(409, "bus.table_in_past", "a fare table takes effect from now on, never in the past")
    # To the terminals first, then here: a call cut in between is retried whole (publishing the same version
    # again is a no-op), and a version here is always one the terminals can have.
    try:
        await publish(ctx, table)
        await ctx.db.insert("fare_tables", msgspec.to_builtins(table), id=f"v{table.version}")
    except VersionConflict:
        return problem(409, "bus.version_exists", "fare table versions are immutable: publish a new version")
    await ctx.log.info(
        "fare table published", version=table.version, effective_from=table.effective_from.isoformat()
    )
    return Response.json(
        {"version": table.version, "effective_from": table.effective_from.isoformat()}, status=201
    )


async def publish(ctx: Context, table: FareTable) -> None:
    """Publish a fare table version to the bus terminals (signed by the platform, synced with their trust list)."""
    await ctx.terminals.publish("fares", table.version, table.effective_from, msgspec.to_builtins(table))


@app.get("/fares/tables")
async def tables(ctx: Context, request: Request) -> Response:
    return Response.json({"tables": msgspec.to_builtins((await schedule(ctx)).tables)})


@app.post("/concessions/grants")
async def grant(ctx: Context, request: Request) -> Response:
    body = request.json(Grant)
    if body.category not in ("student", "disability", "veteran"):
        return problem(400, "bus.unknown_category", "grant student, disability or veteran")
    if body.expires_at.tzinfo is None:
        return problem(400, "bus.expiry_needs_zone", "expires_at needs a time zone")
    value = {"user_id": body.user_id, "category": body.category, "expires_at": body.expires_at.isoformat(),
             "granted_by": await ctx.user.id()}  # fmt: skip
    doc_id = f"{body.user_id}.{body.category}"
    current = await ctx.db.get("eligibility", doc_id)
    if current is None:
        await ctx.db.insert("eligibility", value, id=doc_id)
    else:
        await ctx.db.update("eligibility", doc_id, value, expected_version=current.version)
    await ctx.log.info("concession granted", category=body.category, expires_at=value["expires_at"])
    return Response.json(value, status=201)


@app.get("/fares/disputes")
async def disputes(ctx: Context, request: Request) -> Response:
    page = await ctx.db.find("disputes", {"status": request.query.get("status", "open")}, limit=100)
    return Response.json({"disputes": [{"ride": r.id, **r.value} for r in page.items]})


@app.post("/fares/disputes/{ride}/refund")
async def refund(ctx: Context, request: Request) -> Response:
    body = request.json(Decision)
    ride_id = request.path_params["ride"]
    case = await ctx.db.get("disputes", ride_id)
    ride = await ctx.db.get("rides", ride_id)
    if case is None or ride is None:
        return problem(404, "bus.dispute_not_found", "no such dispute")
    if case.value["status"] == "rejected":
        return problem(409, "bus.dispute_closed", "this dispute was rejected")
    paid = ride.value["fare_fen"]
    amount = paid if body.amount_fen is None else body.amount_fen
    if not 0 < amount <= paid or ride.value.get("payment_id") is None:
        return problem(400, "bus.bad_refund", f"refund between 1 and {paid} fen of a charged ride")
    # The key is the dispute: a retried decision refunds once (a different amount then is refused).
    done = await ctx.payments.refund(
        ride.value["payment_id"], amount, "票价争议退款 disputed fare", f"dispute:{ride_id}"
    )
    await ctx.db.update(
        "rides", ride_id, {**ride.value, "refunded_fen": done.amount_fen}, expected_version=ride.version
    )
    await ctx.db.update("disputes", ride_id, {**case.value, "status": "refunded", "refunded_fen": done.amount_fen,
                                              "note": body.note}, expected_version=case.version)  # fmt: skip
    await ctx.notify.send(
        "票价已退 Fare refunded", f"¥{yuan(done.amount_fen)}", user_id=ride.value["user_id"]
    )
    return Response.json({"ride": ride_id, "status": "refunded", "refunded_fen": done.amount_fen})


@app.post("/fares/disputes/{ride}/reject")
async def reject(ctx: Context, request: Request) -> Response:
    body = request.json(Decision)
    case = await ctx.db.get("disputes", request.path_params["ride"])
    if case is None:
        return problem(404, "bus.dispute_not_found", "no such dispute")
    if case.value["status"] != "open":
        return problem(409, "bus.dispute_closed", f"this dispute is {case.value['status']}")
    await ctx.db.update("disputes", case.id, {**case.value, "status": "rejected", "note": body.note},
                        expected_version=case.version)  # fmt: skip
    return Response.json({"ride": case.id, "status": "rejected"})


# ---- 一卡通行: the daily clearing report per partner county -----------------------------------------------


async def clearing_for(ctx: Context, day: dt.date) -> list[dict[str, Any]]:
    """The day's report, computed once and then kept: asking again (or the job running again) gives the same."""
    kept = await ctx.db.find("clearing", {"day": day.isoformat()}, limit=100)
    if kept.items:
        return sorted((r.value for r in kept.items), key=lambda v: v["issuer"])
    totals: dict[int, list[int]] = {}
    after = None
    while True:
        page = await ctx.db.find("rides", {"day": day.isoformat()}, limit=100, after=after)
        for r in page.items:
            issuer = r.value.get("issuer")
            if issuer in PARTNERS and r.value["user_id"] is None:
                counts = totals.setdefault(issuer, [0, 0])
                counts[0] += 1
                counts[1] += r.value["fare_fen"]
        after = page.cursor
        if after is None:
            break
    rows = [{"day": day.isoformat(), "issuer": issuer, "county": PARTNERS[issuer], "rides": totals.get(issuer, [0, 0])[0],
             "amount_fen": totals.get(issuer, [0, 0])[1]} for issuer in sorted(PARTNERS)]  # fmt: skip
    try:
        async with ctx.db.transaction() as tx:
            for row in rows:
                tx.insert("clearing", row, id=f"{row['day']}.{row['issuer']}")
    except VersionConflict:  # computed at the same moment by the job or another call: theirs is the report
        kept = await ctx.db.find("clearing", {"day": day.isoformat()}, limit=100)
        return sorted((r.value for r in kept.items), key=lambda v: v["issuer"])
    return rows


@app.get("/fares/clearing")
async def clearing(ctx: Context, request: Request) -> Response:
    """`?day=2026-12-07&format=csv|json`: rides of partner counties' codes that day and what each owes, as the
    00:30 job cleared it (the same answer every time)."""
    try:
        day = dt.date.fromisoformat(request.query.get("day", ""))
    except ValueError:
        return problem(400, "bus.bad_day", "give day=YYYY-MM-DD")
    kept = await ctx.db.find("clearing", {"day": day.isoformat()}, limit=100)
    if not kept.items:
        return problem(404, "bus.not_cleared", "the day is cleared at 00:30 county time the day after")
    rows = sorted((r.value for r in kept.items), key=lambda v: v["issuer"])
    if request.query.get("format") == "csv":
        lines = ["day,issuer,county,rides,amount_fen"]
        lines += [f"{r['day']},{r['issuer']},{r['county']},{r['rides']},{r['amount_fen']}" for r in rows]
        return Response(
            body=("\r\n".join(lines) + "\r\n").encode(), headers={"content-type": "text/csv; charset=utf-8"}
        )
    return Response.json({"day": day.isoformat(), "counties": rows})


@app.get("/fares/repriced")
async def repriced(ctx: Context, request: Request) -> Response:
    """`?day=2026-12-07`: that day's offline rides whose terminal price settlement corrected (the terminal held
    an older table, or none): what the terminal asked and what was charged, so no correction goes unseen."""
    try:
        day = dt.date.fromisoformat(request.query.get("day", ""))
    except ValueError:
        return problem(400, "bus.bad_day", "give day=YYYY-MM-DD")
    found = []
    after = None
    while True:
        page = await ctx.db.find("rides", {"day": day.isoformat()}, limit=100, after=after)
        for r in page.items:
            v = r.value
            if v["mode"] == "offline" and v.get("terminal_fen") != v.get("settled_fen"):
                found.append({"ride": r.id, "line": v["line"], "at": v["at"], "terminal": v["terminal"],
                              "table_version": v["table_version"], "terminal_fen": v.get("terminal_fen"),
                              "settled_fen": v.get("settled_fen")})  # fmt: skip
        after = page.cursor
        if after is None:
            break
    return Response.json({"day": day.isoformat(), "rides": found})


@app.job("clear")
async def clear_yesterday(ctx: Context, job: JobEvent) -> None:
    """00:30 county time: yesterday's clearing report (kept; a rerun finds it)."""
    await clearing_for(ctx, job.scheduled_at.astimezone(COUNTY_TIME).date() - dt.timedelta(days=1))


@app.job("seed")
async def seed_demo(ctx: Context, job: JobEvent) -> None:
    """The demo fare table (yima dev runs it once a day; present already: nothing to do), and every version
    published to the terminals (again: a no-op for those that are)."""
    try:
        await ctx.db.insert("fare_tables", seed.TABLE, id=f"v{seed.TABLE['version']}")
    except VersionConflict:
        pass
    for table in (await schedule(ctx)).tables:
        await publish(ctx, table)
