"""Work after the call: a worker that keeps using CPU once its handler has answered is recycled, by the
watchdog while it sits idle, or at the latest before it is handed the next call."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from sandbox_helpers import all_dead, get, running_host, when_replaced

from sandbox import SandboxSettings
from sandbox._process import _TICK_MS

# on both loops (tests/event_loops.py): the host's watchdog over its workers
pytestmark = pytest.mark.both_loops


def _cpu_ms(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_MS


async def test_a_worker_spinning_after_its_call_is_recycled_by_the_watchdog() -> None:
    async with running_host("spin_after_call", "neighbour") as (host, keys):
        key = keys["spin_after_call"]
        answer = msgspec.json.decode((await host.call(key, get("/attack"))).body)
        assert answer["spinning"]
        # nobody calls the app again: the watchdog alone must notice the idle worker burning CPU
        assert await all_dead([answer["pid"]], within_s=30)
        assert host.metrics()[key]["idle_cpu_recycled"] == 1
        assert any("while idle" in r.get("reason", "") for r in host.logs(key))
        after = msgspec.json.decode((await host.call(key, get("/ok"))).body)
        assert after["pid"] != answer["pid"]
        assert (await host.call(keys["neighbour"], get("/ping"))).status == 200


async def test_the_next_call_never_pays_for_work_left_behind() -> None:
    quiet_watchdog = SandboxSettings(watchdog_interval_ms=3_600_000)  # only the hand-over check is left
    async with running_host("spin_after_call", settings=quiet_watchdog) as (host, keys):
        key = keys["spin_after_call"]
        pid = msgspec.json.decode((await host.call(key, get("/attack"))).body)["pid"]
        answered_at = _cpu_ms(pid)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while _cpu_ms(pid) - answered_at < 200:  # the spinner has burnt well past the idle allowance
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        # the next call gets a fresh worker and answers normally (no 504, no cpu_exceeded). Recycling the spinner
        # at hand-over leaves the call waiting for the replacement to start, which on a busy machine can take
        # longer than the call's wait for a free worker: `busy` (retry shortly) until then, boundedly.
        answer = await when_replaced(host, key, get("/ok"), limit_s=30)
        after = msgspec.json.decode(answer.body)
        assert after["pid"] != pid
        assert host.metrics()[key]["idle_cpu_recycled"] == 1
