"""The medicine app's `App` and what its route modules share: the watched classes and their default rules,
answers, county days and the 7-day window."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from yima_sdk import App, Context, Response
from yima_sdk.cron import COUNTY_TIME

app = App()

MEDICAL = "gov.guangde.medical"
WATCHED = ("antipyretic", "antiviral", "antibiotic", "cough")
WINDOW_S = 7 * 24 * 3600
DEFAULT_RULES: dict[str, Any] = {"watched": True, "limits": dict.fromkeys(WATCHED, 2)}
DOC_ID = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
"""What an id of ours looks like (a document id, with room for the suffixes of the records that follow)."""


def problem(status: int, code: str, message: str) -> Response:
    return Response.json({"code": code, "error": message}, status=status)


def county_day(at: float) -> str:
    return dt.datetime.fromtimestamp(at, COUNTY_TIME).date().isoformat()


async def rules(ctx: Context) -> dict[str, Any]:
    stored = await ctx.storage.get("rules")
    return stored if stored is not None else DEFAULT_RULES


def as_doc(record: Any) -> dict[str, Any]:
    return {"id": record.id, **record.value}


def in_window(entries: list[list[Any]], at: float) -> list[list[Any]]:
    """The ledger entries `[sale, at, boxes]` of the 7 days before `at`."""
    return [e for e in entries if e[1] > at - WINDOW_S]


async def still_bought(ctx: Context, entries: list[list[Any]], at: float) -> list[list[Any]]:
    """The ledger entries of the 7 days before `at` whose sale stands: a void or refund is a record of its own
    (`<sale>.void`, `<sale>.refund`) and the ledger is never edited for it, so its boxes are left out here."""
    kept = []
    for entry in in_window(entries, at):
        if await undone(ctx, entry[0]) is None:
            kept.append(entry)
    return kept


async def undone(ctx: Context, sale_id: str) -> str | None:
    """`void` or `refund` if a record undoes the sale, else None."""
    for kind in ("void", "refund"):
        if await ctx.db.get("sales", f"{sale_id}.{kind}") is not None:
            return kind
    return None
