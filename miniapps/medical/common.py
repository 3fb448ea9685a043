"""The medical app's `App` and what its route modules share: session times, the cancel cut-off, answers
in county time, the staff check and the queue's figures."""

from __future__ import annotations

import datetime as dt
from typing import Any

from yima_sdk import App, Context, Request, Response
from yima_sdk.cron import COUNTY_TIME

app = App()

STARTS = {"am": dt.time(8, 0), "pm": dt.time(14, 0)}
CANCEL_HOURS = 1
"""Residents cancel (and are refunded) until one hour before the session starts, unless its scheduler set
another cut-off (`cancel_hours`, 0-72)."""
OPEN = ("booked", "waiting", "called")


def problem(status: int, code: str, message: str) -> Response:
    return Response.json({"code": code, "error": message}, status=status)


def county_now(request: Request | None = None) -> dt.datetime:
    """The platform's time of the request (the simulator's `advance` moves it), in county time."""
    at = request.received_at if request is not None else None
    return (at or dt.datetime.now(dt.UTC)).astimezone(COUNTY_TIME)


def starts_at(session: dict[str, Any]) -> dt.datetime:
    day = dt.date.fromisoformat(session["day"])
    return dt.datetime.combine(day, STARTS[session["half"]], COUNTY_TIME)


def age_on(born: str, day: dt.date) -> int:
    birth = dt.date.fromisoformat(born)
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


async def holds(ctx: Context, role: str, institution: str) -> bool:
    return (await ctx.user.staff()).has(role, f"institution:{institution}")


async def doctors_booking(ctx: Context, booking_id: str) -> Any:
    record = await ctx.db.get("bookings", booking_id)
    if record is None:
        return problem(404, "medical.no_such_booking", "no booking with that id")
    if not await holds(ctx, "doctor", record.value["institution"]):
        return problem(403, "medical.other_institution", "you work at another institution")
    return record


async def ahead_of(ctx: Context, booking: dict[str, Any]) -> int:
    where = {"session": booking["session"], "status": "waiting", "number": {"lt": booking["number"]}}
    return await ctx.db.count("bookings", where)


async def calling(ctx: Context, session_id: str) -> list[int]:
    page = await ctx.db.find("bookings", {"session": session_id, "status": "called"}, order_by="number")
    return [r.value["number"] for r in page.items]


def as_doc(record: Any) -> dict[str, Any]:
    return {"id": record.id, **record.value}
