"""Sandbox benchmark: an in-process call of a handler vs the same handler through the sandbox, side by side;
sandboxed throughput with concurrent callers; worker cold start; memory per idle worker.

Run: .venv/bin/python tests/bench/bench_sandbox.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from yima_sdk import Request
from yima_sdk._app import App, Context

from sandbox import SandboxHost, SandboxSettings

APPS = Path(__file__).resolve().parents[1] / "sandbox" / "apps"
SEQUENTIAL = 3000
CONCURRENT = 20000
CALLERS = 16


async def in_process_p50(app: App, request: Request) -> float:
    ctx: Any = Context.__new__(Context)  # the echo handler touches nothing but ctx.user_id
    ctx.user_id = None
    timings = []
    for _ in range(SEQUENTIAL):
        started = time.perf_counter()
        await app.handle(ctx, request)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


async def sandboxed_p50(host: SandboxHost, key: str, request: Request) -> float:
    timings = []
    for _ in range(SEQUENTIAL):
        started = time.perf_counter()
        await host.call(key, request)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


async def throughput(host: SandboxHost, key: str, request: Request) -> float:
    per_caller = CONCURRENT // CALLERS

    async def caller() -> None:
        for _ in range(per_caller):
            await host.call(key, request)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(CALLERS)))
    return per_caller * CALLERS / (time.perf_counter() - started)


def idle_memory(pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MiB of one idle worker."""
    rss = pss = 0
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as smaps:
        for line in smaps:
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss / 1024, pss / 1024


async def cold_starts(rounds: int = 10) -> list[float]:
    """Wall time from spawn to Ready for a fresh one-worker pool, all layers applied."""
    timings = []
    for _ in range(rounds):
        host = SandboxHost(SandboxSettings.production())
        host.add_app(APPS / "neighbour")
        started = time.perf_counter()
        await host.start()
        timings.append((time.perf_counter() - started) * 1000)
        await host.close()
    return timings


async def main() -> None:
    sys.path.insert(0, str(APPS / "echo"))
    from app import app as echo_app  # the very handler the sandbox runs

    request = Request(method="GET", path="/ping")
    host = SandboxHost(SandboxSettings.production())
    key = host.add_app(APPS / "echo")  # 2 workers
    await host.start()
    try:
        for _ in range(500):  # warm up both paths
            await host.call(key, request)
        local = await in_process_p50(echo_app, request)
        boxed = await sandboxed_p50(host, key, request)
        rate = await throughput(host, key, request)
        memory = [idle_memory(pid) for pid in host.worker_pids(key)]
    finally:
        await host.close()
    starts = await cold_starts()
    print(f"in-process handler call    p50 {local * 1000:8.1f} µs")
    print(
        f"sandboxed call             p50 {boxed * 1000:8.1f} µs   (added {(boxed - local) * 1000:.1f} µs; "
        f"target <= 500 µs)"
    )
    print(
        f"sandboxed throughput       {rate:8.0f} calls/s with {CALLERS} callers, 2 workers (target >= 3000)"
    )
    print(
        f"worker cold start          median {statistics.median(starts):6.1f} ms, "
        f"max {max(starts):6.1f} ms (spawn -> Ready, all layers)"
    )
    for rss, pss in memory:
        print(f"idle worker memory         RSS {rss:6.1f} MiB, PSS {pss:6.1f} MiB")


if __name__ == "__main__":
    asyncio.run(main())
