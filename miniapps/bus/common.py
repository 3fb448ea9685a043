"""The bus app's `App` and what its route modules share: the alliance's counties, answers, fares in yuan, the
fare schedule and a rider's rides of a month."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from yima_sdk import App, ConsentDenied, Context, Response
from yima_sdk.fares import Eligibility, FareSchedule, FareTable, Rider

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


def problem(status: int, code: str, message: str) -> Response:
    return Response.json({"code": code, "error": message}, status=status)


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


async def schedule(ctx: Context) -> FareSchedule:
    """Every fare table version (the platform keeps up to 200 of them), read page by page."""
    tables: list[FareTable] = []
    after = None
    while True:
        page = await ctx.db.find("fare_tables", order_by="version", limit=100, after=after)
        tables.extend(msgspec.convert(r.value, FareTable) for r in page.items)
        after = page.cursor
        if after is None:
            return FareSchedule(tables)


async def month_rides(ctx: Context, user_id: str, month: str) -> list[dict[str, Any]]:
    """The rider's rides of a month in ride order, each with its tap-off where it had one (tapoff.py): `alight`
    (the stop), `tapoff_off_fen` (what the tap-off gave back) and `tapoff_status`."""
    alights = await _all(ctx, "alights", {"user_id": user_id, "month": month})
    return [
        {"id": ride_id, **value, **_tap_off_of(alights.get(ride_id))}
        for ride_id, value in (await _all(ctx, "rides", {"user_id": user_id, "month": month}, "at")).items()
    ]


CARRIED = dt.timedelta(days=1)
"""The longest transfer window a fare table may set: a month's first boardings are priced after the rider's rides
of the month before within this long of its start."""


async def carried_in(ctx: Context, user_id: str, month_start: dt.datetime) -> list[dict[str, Any]]:
    """The rider's rides of the month before `month_start` (county midnight on the 1st) in its last day: a boarding
    just after midnight transfers from one just before it (caps start again with the day and the month, so their
    fares, and tap-offs, do not matter here)."""
    month = (month_start - dt.timedelta(days=1)).strftime("%Y-%m")
    where = {"user_id": user_id, "month": month, "at": {"gte": (month_start - CARRIED).isoformat()}}
    return [{"id": ride_id, **value} for ride_id, value in (await _all(ctx, "rides", where, "at")).items()]


def _tap_off_of(alight: dict[str, Any] | None) -> dict[str, Any]:
    if alight is None:
        return {"alight": None, "alighted_at": None, "tapoff_off_fen": 0, "tapoff_status": None}
    return {"alight": alight["alight"], "alighted_at": alight["at"], "tapoff_off_fen": alight["off_fen"],
            "tapoff_status": alight["status"]}  # fmt: skip


async def _all(
    ctx: Context, collection: str, where: dict[str, Any], order_by: str | None = None
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    after = None
    while True:
        page = await ctx.db.find(collection, where, order_by=order_by, limit=100, after=after)
        out.update((r.id, r.value) for r in page.items)
        after = page.cursor
        if after is None:
            return out


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
