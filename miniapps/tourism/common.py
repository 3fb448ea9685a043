"""The tourism app's `App` and what its route modules share: its id, answers, and county time."""

from __future__ import annotations

import datetime as dt
from typing import Any

from yima_sdk import App, Request, Response
from yima_sdk.cron import COUNTY_TIME

app = App()

APP = "gov.guangde.tourism"

HORIZON_DAYS = 90
"""How far ahead a slot is published or a route bought: today to today + 90 days (a pass is signed at most a
year ahead; a date beyond the calendar would not even have a last day)."""


def problem(status: int, code: str, message: str) -> Response:
    return Response.json({"code": code, "error": message}, status=status)


def county_now(request: Request | None = None) -> dt.datetime:
    """The platform's time of `request` (the simulator's `advance` moves it), else the clock's, in county time."""
    at = request.received_at if request is not None else None
    return (at or dt.datetime.now(dt.UTC)).astimezone(COUNTY_TIME)


def at_time(day: str, hhmm: str) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time.fromisoformat(hhmm), COUNTY_TIME)


def age_on(born: str, day: dt.date) -> int:
    birth = dt.date.fromisoformat(born)
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def as_doc(record: Any) -> dict[str, Any]:
    return {"id": record.id, **record.value}


def outside_horizon(day: dt.date, request: Request) -> Response | None:
    """400 `tourism.bad_day` for a day before today or past the horizon (county time), else None."""
    today = county_now(request).date()
    if today <= day <= today + dt.timedelta(days=HORIZON_DAYS):
        return None
    return problem(400, "tourism.bad_day", f"choose a day from today to {HORIZON_DAYS} days ahead")
