"""Days in the bus app's tests: seeded as `yima dev` seeds it, the clock moved to an off-peak Wednesday."""

from __future__ import annotations

import datetime as dt

from yima_sdk.cron import COUNTY_TIME
from yima_sdk.simulator import AsyncSimulator
from yima_sdk.testing import MiniApp


def next_wednesday_10(now: float) -> dt.datetime:
    """Next Wednesday 10:00 county time (off-peak) after `now`."""
    today = dt.datetime.fromtimestamp(now, COUNTY_TIME)
    day = today + dt.timedelta(days=(2 - today.weekday()) % 7 or 7)
    return day.replace(hour=10, minute=0, second=0, microsecond=0)


async def seeded_at_wednesday_10(sim: AsyncSimulator) -> dt.datetime:
    """`to_wednesday_10` on an AsyncSimulator (which can deliver scans side by side)."""
    sim.platform.schedule_job("seed", key="yima-dev-seed")
    assert [run.ok for run in await sim.advance(seconds=1) if run.name == "seed"] == [True]
    target = next_wednesday_10(sim.platform.clock())
    await sim.advance(seconds=target.timestamp() - sim.platform.clock())
    return target


def to_wednesday_10(miniapp: MiniApp) -> dt.datetime:
    """Seed as `yima dev` does, then move the simulator's clock to next Wednesday 10:00 county time (off-peak)."""
    miniapp.schedule_job("seed", key="yima-dev-seed")
    assert [run.ok for run in miniapp.advance(seconds=1) if run.name == "seed"] == [True]
    target = next_wednesday_10(miniapp.now)
    miniapp.advance(seconds=target.timestamp() - miniapp.now)
    return target
