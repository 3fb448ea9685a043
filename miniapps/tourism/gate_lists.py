"""What the gates of each spot hold to decide offline (the platform's terminal lists, `ctx.terminals.hold`): a
ticket or route pass, once paid, is an entry of the `gate` list of each of its spots' units, bound to the visitor
(a gate finds it from their Ankang code without learning who they are) and to the pass; it is dropped when the
ticket is cancelled and expires after its last day. A gate admits by it from the ticket's entry hours on (until
its slot ends for a first entry), once, again only where the spot allows re-entry, for the ticket's people; the
scans it uploads later settle in gates.py as online ones do."""

from __future__ import annotations

import datetime as dt
from typing import Any

from common import at_time
from gates import GRACE
from yima_sdk import CapabilityFailed, Context, InvalidArgument, QuotaExceeded, VersionConflict

GATE_LIST = "gate"


def entry_key(collection: str, value: dict[str, Any]) -> str:
    """The entry's key: the ticket's slot and number, or the route order's number (nothing of the visitor)."""
    if collection == "tickets":
        return f"ticket.{value['slot']}.{value['number']}"
    return f"route.{value['number']}"


async def _paid(ctx: Context, value: dict[str, Any]) -> bool:
    if value.get("paid"):
        return True
    if value.get("payment_id") is None:
        return bool(value["price_fen"] == 0)
    return (await ctx.payments.status(value["payment_id"])).status == "succeeded"


async def hold_for_gates(ctx: Context, collection: str, record_id: str) -> bool:
    """Hold a booked, paid ticket or route order at the gates of its spots (once: it is marked `gates`); True
    when it is held now. Holding again is harmless (the platform's hold is idempotent). When the platform
    refuses (a day too far ahead, the list full, the platform unreachable) it is not held: the gates decide
    online, and False. A ticket cancelled while it was being held is dropped again."""
    record = await ctx.db.get(collection, record_id)
    if record is None:
        return False
    value = record.value
    if value.get("gates") or value["status"] != "booked" or value.get("pass") is None:
        return bool(value.get("gates"))
    if not await _paid(ctx, value):
        return False
    first, last = (value["day"], value["day"]) if collection == "tickets" else (value["from"], value["until"])
    spots = [value["spot"]] if collection == "tickets" else value["spots"]
    held: dict[str, Any] = {
        "kind": collection[:-1],
        "from": first,
        "until": last,
        "people": value.get("people", 1),
    }
    opens = at_time(first, "00:00")
    if collection == "tickets":  # a first entry within its slot's entry hours, as gates.py judges it online
        opens = at_time(first, value["start"]) - GRACE
        held["enter_until"] = int(at_time(first, value["end"]).timestamp())
    try:
        for spot_id in spots:
            spot = await ctx.db.get("spots", spot_id)
            reentry = bool(spot is not None and spot.value["reentry"])
            await ctx.terminals.hold(
                GATE_LIST, f"spot:{spot_id}", entry_key(collection, value), {**held, "reentry": reentry},
                at_time(last, "23:59") + dt.timedelta(minutes=1), valid_from=opens,
                user_id=value["user_id"], pass_id=value["pass"]["id"],
            )  # fmt: skip
    except (InvalidArgument, QuotaExceeded, CapabilityFailed) as refused:
        # e.g. a day more than 30 days ahead, or a spot's list full: its gates decide online
        await ctx.log.info(
            "not held for offline gates", collection=collection, refused=type(refused).__name__
        )
        return False
    for _ in range(5):
        # a cancel that committed since the read dropped nothing yet held: drop what was held now; a cancel
        # that commits after this read drops it itself (finish_cancel)
        now = await ctx.db.get(collection, record_id)
        if now is None or now.value["status"] != "booked" or now.value["number"] != value["number"]:
            await drop_from_gates(ctx, collection, value)
            return False
        if now.value.get("gates"):
            return True
        try:
            await ctx.db.update(collection, record_id, {**now.value, "paid": True, "gates": True},
                                expected_version=now.version)  # fmt: skip
        except VersionConflict:
            continue  # changed meanwhile (a scan, a cancel): read it again
        return True
    return True  # held; marked by the next call, which holds again and changes nothing


async def drop_from_gates(ctx: Context, collection: str, value: dict[str, Any]) -> None:
    """A cancelled ticket: its spots' gates forget it at their next sync (its pass is refused offline then)."""
    spots = [value["spot"]] if collection == "tickets" else value["spots"]
    for spot_id in spots:
        await ctx.terminals.drop(GATE_LIST, f"spot:{spot_id}", entry_key(collection, value))
