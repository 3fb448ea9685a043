"""The tourism app's `App` and what its route modules share: its id, answers, and county time."""

from __future__ import annotations

import datetime as dt
from typing import Any

from yima_sdk import App, Request, Response
from yima_sdk.cron import COUNTY_TIME

app = App()

APP = "gov.guangde.tourism"


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
