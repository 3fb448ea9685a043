"""Demo data: the seed job (yima dev) and the admin's route."""

from __future__ import annotations

from typing import Any

import seed
from common import app
from yima_sdk import Context, JobEvent, Request, VersionConflict


async def load_demo(ctx: Context) -> int:
    """The demo pharmacies and catalogue in one commit, so nobody sees the pharmacies without the drugs; on a
    rerun (some there already) each one that is missing. How many documents were added."""
    documents = list(seed.documents())
    try:
        async with ctx.db.transaction() as tx:
            for collection, doc_id, value in documents:
                tx.insert(collection, value, id=doc_id)
        return len(documents)
    except VersionConflict:
        pass  # seeded before
    added = 0
    for collection, doc_id, value in documents:
        try:
            await ctx.db.insert(collection, value, id=doc_id)
            added += 1
        except VersionConflict:
            pass
    return added


@app.job("seed")
async def seed_demo(ctx: Context, job: JobEvent) -> None:
    await load_demo(ctx)


@app.post("/admin/seed")
async def seed_route(ctx: Context, request: Request) -> dict[str, Any]:
    return {"added": await load_demo(ctx)}
