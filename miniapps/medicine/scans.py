"""The pharmacy terminal's scan (may this resident buy, and what is limited), and the pharmacies and catalogue
anyone reads."""

from __future__ import annotations

import datetime as dt
from typing import Any

from common import WATCHED, app, as_doc, rules, still_bought
from yima_sdk import ConsentDenied, Context, Request, ScanEvent

CLASS_NAMES = {"antipyretic": "退热", "antiviral": "抗病毒", "antibiotic": "抗菌", "cough": "止咳"}


# ---- anyone: pharmacies and the catalogue ---------------------------------------------------------------


@app.get("/pharmacies")
async def pharmacies(ctx: Context, request: Request) -> dict[str, Any]:
    return {"pharmacies": [as_doc(r) for r in (await ctx.db.find("pharmacies", limit=100)).items]}


@app.get("/catalogue")
async def catalogue(ctx: Context, request: Request) -> dict[str, Any]:
    drugs = [as_doc(r) for r in (await ctx.db.find("drugs", limit=100)).items]
    return {"drugs": drugs, "rules": await rules(ctx)}


# ---- the pharmacy terminal: may this resident buy, and what is limited ----------------------------------


@app.on_scan("pharmacy")
async def at_the_counter(ctx: Context, event: ScanEvent) -> dict[str, Any] | None:
    if event.data.mode == "offline":
        return None  # nobody waits at the counter for an uploaded scan
    unit = event.data.unit or ""
    if not unit.startswith("pharmacy:"):
        return {"lines": ["终端未绑定药房 Terminal has no pharmacy"]}
    pharmacy = unit.removeprefix("pharmacy:")
    if event.user_id is None:
        return {
            "lines": [
                "未使用一码购药 New to 一码购药",
                "仅非登记药 Unwatched OTC only",
                "请先打开一码购药 Open it once",
            ]
        }
    try:
        colour = await ctx.user.scope("health_color")
    except ConsentDenied:
        colour = None
    at = (event.data.scanned_at or dt.datetime.now(dt.UTC)).timestamp()
    if colour == "red":
        return {"lines": ["红码 Red code: 不可购药 No sale", "请去发热门诊 Go to a fever clinic"]}
    number = await ctx.storage.counter_add(f"tickets:{pharmacy}", 1)
    ticket = {"user_id": event.user_id, "pharmacy": pharmacy, "colour": colour, "at": int(at)}
    await ctx.db.insert("tickets", ticket, id=f"{pharmacy}.{number}")
    lines = [f"单号 Ticket {number}: 可购药 May buy", "处方药凭电子处方 Rx: e-prescription"]
    current = await rules(ctx)
    if not current["watched"]:
        lines.append("购药登记已关闭 No registration now")
    elif colour == "yellow":
        lines.append("黄码 Yellow: 四类药不可购 No watched")
    else:
        left = await watched_left(ctx, event.user_id, current, at)
        lines.append("7天余 left " + " ".join(f"{CLASS_NAMES[c]}{n}" for c, n in left.items()))
    if colour is None:
        lines.append("未授权码色 Colour not shared")
    return {"lines": lines}


async def watched_left(ctx: Context, user_id: str, current: dict[str, Any], at: float) -> dict[str, int]:
    left = {}
    for kind in WATCHED:
        ledger = await ctx.db.get("ledgers", f"{user_id}.{kind}")
        bought = await still_bought(ctx, ledger.value["entries"], at) if ledger else []
        left[kind] = max(current["limits"].get(kind, 0) - sum(e[2] for e in bought), 0)
    return left
