"""A partner county's rider tapping off (一卡通行 下车刷卡): their boarding found by the code's pseudonym.

A partner county's code names no one here (`event.user_id` None), but the platform gives each scan of it the
holder's pseudonym in this app (`event.data.holder_ref`: the same for every scan of one ride code). A tap-off
finds the partner boarding with the same `holder_ref`: the latest at or before it, on the same line, within
`WINDOW`, from a known stop, not tapped off; the ride is priced again by stops travelled (the table's price, as
a partner ride always is) and what it costs less comes off what the partner county owes, once:

- the ride not on a clearing report yet: its fare is lowered, and the report owes the lower fare;
- the ride on a report already (its day cleared, or a report being written): the report cannot change, so an
  adjustment (`adjustments`, id `adj.<ride>`, a negative fare) waits for the next report (`uncleared`), where it is
  a row of mode `tap_off` taking the difference off the county's amount.

The ride's document is written in the same commit as the tap-off (`taps`, id = the scan: each handled once) and
a report's claim of the ride writes it too, so either the claim sees the lower fare or the tap-off sees the claim.
A partner tap-off that finds no boarding (it came first, or the rider boarded with another code) changes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

from common import schedule, yuan
from tapoff import MAX_LINE, NO_BOARDING, WINDOW, stops_known
from yima_sdk import Context, ScanEvent, VersionConflict
from yima_sdk.cron import COUNTY_TIME
from yima_sdk.fares import FareError, Ride, Rider, price_rides


async def partner_tap_off(ctx: Context, event: ScanEvent, line: str, holder_ref: str) -> dict[str, Any]:
    """The partner tap-off: its boarding re-priced by stops travelled, the county owing less, once."""
    if event.data.stop is None:
        return {"lines": ["终端未设站点 This terminal names no stop", "未扣费 Nothing charged"]}
    for _ in range(9):
        with contextlib.suppress(VersionConflict):  # a report claimed the ride meanwhile: decide again
            return await partner_tap_once(ctx, event, line, holder_ref)
    return await partner_tap_once(ctx, event, line, holder_ref)


async def partner_tap_once(ctx: Context, event: ScanEvent, line: str, holder_ref: str) -> dict[str, Any]:
    scan_id, stop = event.data.scan_id, event.data.stop
    assert stop is not None
    at = (event.data.scanned_at or dt.datetime.now(dt.UTC)).astimezone(COUNTY_TIME)
    earlier = await ctx.db.get("taps", scan_id)
    if earlier is not None:  # this tap-off delivered again: decided once
        ride = await ctx.db.get("rides", earlier.value["ride"]) if earlier.value["ride"] else None
        if earlier.value["status"] != "applied" or ride is None:
            return {"lines": NO_BOARDING}
        return {"lines": partner_lines(ride.value)}
    page = await ctx.db.find(
        "rides",
        {"holder_ref": holder_ref, "line": line, "at": {"lte": at.isoformat()}},
        limit=5,
        order_by="-at",
    )
    latest = page.items[0] if page.items else None
    tap = {"user_id": None, "holder_ref": holder_ref, "line": line, "stop": stop, "at": at.isoformat()}
    if (
        latest is None
        or latest.value.get("alight") is not None
        or at - dt.datetime.fromisoformat(latest.value["at"]) > WINDOW
    ):
        async with ctx.db.transaction() as tx:
            tx.insert("taps", {**tap, "ride": None, "status": "unmatched"}, id=scan_id)
        return {"lines": NO_BOARDING}
    fares = await schedule(ctx)
    ride_at = dt.datetime.fromisoformat(latest.value["at"])
    board = latest.value.get("board")
    if not stops_known(fares, line, ride_at, board, stop):
        async with ctx.db.transaction() as tx:
            tx.insert("taps", {**tap, "ride": latest.id, "status": "refused"}, id=scan_id)
        return {"lines": [f"{line}路 站点未知 Stop not known"[-MAX_LINE:], "按全程计价 Full fare kept"]}
    try:
        (priced,) = price_rides(
            fares, Rider(), [Ride(ride_id=latest.id, at=ride_at, line=line, board=board, alight=stop)]
        )
    except FareError as exc:
        await ctx.log.warning("tap-off not priced", scan=scan_id, reason=str(exc))
        return {"lines": ["票价未配置 No fare for this line"]}
    async with ctx.db.transaction() as tx:
        ride = await tx.get("rides", latest.id)
        assert ride is not None
        value = ride.value
        off = max(0, value["fare_fen"] - priced.fare_fen)
        on_report = (
            value.get("report_day") is not None or await tx.get("clearing_rides", latest.id) is not None
        )
        changed = {**value, "alight": stop, "tapoff_off_fen": off}
        if off and on_report:  # the report is kept as issued: the next one takes the difference off
            adj_id = f"adj.{latest.id}"
            tx.insert("adjustments", {
                "user_id": None, "issuer": value["issuer"], "day": value["day"], "at": at.isoformat(),
                "line": line, "fare_fen": -off, "mode": "tap_off", "ride": latest.id,
            }, id=adj_id)  # fmt: skip
            tx.insert("uncleared", {"issuer": value["issuer"], "day": value["day"]}, id=adj_id)
        elif off:
            changed["fare_fen"] = value["fare_fen"] - off
        tx.update("rides", latest.id, changed, expected_version=ride.version)
        tx.insert("taps", {**tap, "ride": latest.id, "status": "applied"}, id=scan_id)
    return {"lines": partner_lines(changed)}


def partner_lines(ride: dict[str, Any]) -> list[str]:
    lines = [f"{ride['line']}路 {ride.get('board') or '?'} → {ride['alight']}"[:MAX_LINE]]
    off = ride.get("tapoff_off_fen", 0)
    lines.append(f"一卡通行 按站计价 -¥{yuan(off)}" if off else "一卡通行 票价不变 Fare unchanged")
    return lines
