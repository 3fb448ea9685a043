"""The bus app's `App` and what its route modules share: the alliance's counties, answers, fares in yuan, the
fare schedule and a rider's rides of a month."""

from __future__ import annotations

from typing import Any

import msgspec
from yima_sdk import App, Context, Response
from yima_sdk.fares import FareSchedule, FareTable

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
