"""Jobs: tomorrow's reminders; demo data for `yima dev`."""

from __future__ import annotations

import datetime as dt

import seed
from common import STARTS, app
from yima_sdk import Context, JobEvent, VersionConflict
from yima_sdk.cron import COUNTY_TIME


@app.job("remind")
async def remind(ctx: Context, job: JobEvent) -> None:
    tomorrow = (job.scheduled_at.astimezone(COUNTY_TIME) + dt.timedelta(days=1)).date().isoformat()
    after = None
    while True:
        page = await ctx.db.find("bookings", {"day": tomorrow}, limit=100, after=after)
        for booking in page.items:
            if booking.value["status"] != "booked":
                continue
            try:  # at least once: one reminder per booking, whatever the retries
                await ctx.storage.put(f"reminded:{booking.id}", job.job_id, expected_version=0)
            except VersionConflict:
                continue
            start = STARTS[booking.value["half"]].strftime("%H:%M")
            await ctx.notify.send(
                "明日就诊 Visit tomorrow",
                f"{tomorrow} {start} 序号 No. {booking.value['number']}: 请带好一码 bring your code",
                user_id=booking.value["user_id"],
            )
        after = page.cursor
        if after is None:
            return


@app.job("seed")
async def seed_demo(ctx: Context, job: JobEvent) -> None:
    """Demo institutions, departments, doctors and a week of sessions (yima dev runs it once)."""
    first = job.scheduled_at.astimezone(COUNTY_TIME).date()
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
