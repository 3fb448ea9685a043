"""Demo data for `yima dev`."""

from __future__ import annotations

import seed
from common import app, county_now
from yima_sdk import Context, JobEvent, VersionConflict
from yima_sdk.cron import COUNTY_TIME


@app.job("seed")
async def seed_demo(ctx: Context, job: JobEvent) -> None:
    """Demo spots, route packages and a week of slots (yima dev runs it once)."""
    first = job.scheduled_at.astimezone(COUNTY_TIME).date() if job.scheduled_at else county_now().date()
    documents = list(seed.documents(first))
    for at in range(0, len(documents), 50):  # one commit per 50 documents
        batch = documents[at : at + 50]
        try:
            async with ctx.db.transaction() as tx:
                for collection, doc_id, value in batch:
                    tx.insert(collection, value, id=doc_id)
        except VersionConflict:  # seeded before (a rerun, another day): each one that is missing
            for collection, doc_id, value in batch:
                try:
                    await ctx.db.insert(collection, value, id=doc_id)
                except VersionConflict:
                    pass
