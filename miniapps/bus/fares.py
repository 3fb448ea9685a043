"""Staff: fare table versions (published to the terminals), disputed fares refunded or rejected; and the demo
fare table for `yima dev`. Concession grants are concessions.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import seed
from common import app, problem, schedule, yuan
from yima_sdk import Context, InvalidArgument, JobEvent, Request, Response, VersionConflict
from yima_sdk.fares import FareError, FareTable


class Decision(msgspec.Struct, forbid_unknown_fields=True):
    note: str = ""
    amount_fen: int | None = None
    """Refund this much (None: the whole fare paid)."""


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


@app.get("/fares/disputes")
async def disputes(ctx: Context, request: Request) -> Response:
    page = await ctx.db.find("disputes", {"status": request.query.get("status", "open")}, limit=100)
    return Response.json({"disputes": [{"ride": r.id, **r.value} for r in page.items]})


def refundable_fen(ride: dict[str, Any]) -> int:
    """What a disputed ride can give back: an online ride its fare (charged by this app); an offline ride what
    settlement took less what the app gave back already (concession, transfer, cap), never above its fare."""
    if ride["mode"] != "offline":
        return int(ride["fare_fen"]) - ride.get("refunded_fen", 0)
    paid = (ride.get("settled_fen") or 0) - ride.get("returned_fen", 0)
    return min(int(ride["fare_fen"]), paid) - ride.get("refunded_fen", 0)


@app.post("/fares/disputes/{ride}/refund")
async def refund(ctx: Context, request: Request) -> Response:
    """Refund a disputed fare from the ride's payment: this app's charge (online) or settlement's (offline,
    `ride_<scan id>`). The dispute is marked `refunding` with its amount before any money moves, so a reject
    cannot land after the refund; then the refund (the key is the dispute), then `refunded`. A call cut after
    the mark is asked again and completes the recorded refund, once."""
    body = request.json(Decision)
    ride_id = request.path_params["ride"]
    case = await ctx.db.get("disputes", ride_id)
    ride = await ctx.db.get("rides", ride_id)
    if case is None or ride is None:
        return problem(404, "bus.dispute_not_found", "no such dispute")
    status = case.value["status"]
    if status not in ("open", "refunding"):
        return problem(409, "bus.dispute_closed", f"this dispute is {status}")
    if ride.value.get("payment_id") is None:
        return problem(400, "bus.bad_refund", "the ride has no payment to refund")
    marked = dict(case.value)
    if status == "open":
        try:
            async with ctx.db.transaction() as tx:
                # what a tap-off gave back of it is not refundable again; a tap-off (or a give-back) committed
                # while the amount is decided fails this commit (tapoff.py reads the dispute in its own)
                alight = await tx.get("alights", ride_id)
                now = await tx.get("rides", ride_id)
                assert now is not None
                ride = now
                paid = refundable_fen(ride.value) - (alight.value["off_fen"] if alight is not None else 0)
                amount = paid if body.amount_fen is None else body.amount_fen
                if not 0 < amount <= paid:
                    return problem(400, "bus.bad_refund", f"refund between 1 and {paid} fen of a paid ride")
                marked |= {"status": "refunding", "refunded_fen": amount, "note": body.note}
                tx.update("disputes", ride_id, marked, expected_version=case.version)
        except VersionConflict:  # decided (or being refunded) by another call meanwhile; nothing moved
            return problem(409, "bus.dispute_changed", "the dispute changed meanwhile: ask again")
        (version,) = tx.results
    else:  # a refund begun before and cut: complete it with the amount recorded then
        version = case.version
    amount = int(marked["refunded_fen"])
    try:
        done = await ctx.payments.refund(
            ride.value["payment_id"], amount, "票价争议退款 disputed fare", f"dispute:{ride_id}"
        )
    except InvalidArgument as exc:  # not paid (yet): nothing moved, the dispute is open again
        try:
            await ctx.db.update("disputes", ride_id, {**marked, "status": "open"}, expected_version=version)
        except VersionConflict:
            pass  # another call took the dispute on meanwhile: it decides
        return problem(409, "bus.not_refundable", str(exc))
    try:
        async with ctx.db.transaction() as tx:
            tx.update("rides", ride_id, {**ride.value, "refunded_fen": done.amount_fen},
                      expected_version=ride.version)  # fmt: skip
            tx.update("disputes", ride_id, {**marked, "status": "refunded"}, expected_version=version)
    except (
        VersionConflict
    ):  # the ride changed meanwhile: the dispute stays refunding; asked again, refunded once
        return problem(409, "bus.dispute_changed", "the dispute or its ride changed meanwhile: ask again")
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
    if case.value["status"] == "refunding":
        return problem(
            409, "bus.dispute_refunding", "a refund of this dispute is under way: it ends refunded"
        )
    if case.value["status"] != "open":
        return problem(409, "bus.dispute_closed", f"this dispute is {case.value['status']}")
    try:
        await ctx.db.update("disputes", case.id, {**case.value, "status": "rejected", "note": body.note},
                            expected_version=case.version)  # fmt: skip
    except VersionConflict:  # a refund began (or another decision landed) meanwhile
        return problem(409, "bus.dispute_changed", "the dispute changed meanwhile: ask again")
    # The rider hears the decision, as of a refund: the fare stands, with the staff's reason.
    await ctx.notify.send(
        "票价申诉未获退款 Dispute declined",
        body.note or "票价无误 the fare stands",
        user_id=case.value["user_id"],
    )
    return Response.json({"ride": case.id, "status": "rejected"})


# ---- demo data for `yima dev` --------------------------------------------------------------------------


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
