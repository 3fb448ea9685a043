"""Capability round trips per clinic check-in scan of the medical app, counted in the simulator: each capability
call is a trip out of the sandbox and back in production, and the count is deterministic where wall time on a
shared machine is not (docs/benchmarks.md, "Clinic check-in").

    .venv/bin/python tests/bench/checkin_round_trips.py [app folder, default miniapps/medical]

The app's own demo data (its seed job, as `yima dev` runs it); alice and grandpa book today's afternoon session
of Dr Zhou at the county hospital, carol (a yellow code, `health_color` granted) books it too. Printed per scan:
the calls in the order the worker made them, `|` between calls that wait for the one before and `,` between
calls that go at once (a call made while another is in flight).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from yima_sdk.cron import COUNTY_TIME
from yima_sdk.testing import MiniApp

FOLDER = Path(__file__).resolve().parents[2] / "miniapps" / "medical"
PEOPLE = "institution:guangde-people"


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else FOLDER
    with MiniApp(folder) as miniapp:
        miniapp.schedule_job("seed", key="yima-dev-seed")
        miniapp.advance(seconds=1)
        today = dt.datetime.fromtimestamp(miniapp.now, COUNTY_TIME).date().isoformat()
        session = f"dr-zhou.{today}.pm"
        for user in ("grandpa", "alice", "carol"):
            assert miniapp.post(f"/sessions/{session}/book", user=user).status == 201
        miniapp.platform.set_consent("carol", "health_color", True)

        platform = miniapp.platform
        served = platform.handle
        trips: list[tuple[str, bool]] = []
        inflight = 0

        async def counted(call: Any, capability: str, operation: str, *args: Any) -> Any:
            nonlocal inflight
            trips.append((f"{capability}.{operation}".removeprefix("db."), inflight > 0))
            inflight += 1
            try:
                # held a moment, so that what the worker sends at once arrives while this is in flight
                await asyncio.sleep(0.02)
                return await served(call, capability, operation, *args)
            finally:
                inflight -= 1

        platform.handle = counted  # type: ignore[method-assign]

        def scan(label: str, user: str) -> None:
            trips.clear()
            lines = miniapp.scan("clinic", user=user, unit=PEOPLE)
            shown = "".join((", " if together else " | ") + name for name, together in trips)[3:] or "-"
            waits = len(trips) - sum(together for _, together in trips)
            print(f"{label:<28} {len(trips)} calls, {waits} waits: {shown:<24} {lines}")

        print(f"medical app in {folder}")
        scan("first scan (worker's first)", "alice")
        scan("scan again", "alice")
        scan("first scan", "grandpa")
        scan("yellow code", "carol")


if __name__ == "__main__":
    main()
