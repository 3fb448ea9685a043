"""Sandbox worker CPU per call, two versions of the worker side by side: one SandboxHost per interpreter (a checkout's
own venv: a worker starts as `python -I` and imports the sandbox and SDK its venv installed), each running the
probe app on 8 production-layered workers, with a provider that answers a commit at once (no HTTP, no database).
16 callers send the trivial `/whoami` and the 3-write transaction `/db/tx3`, rounds interleaved A B B A; for each
round the CPU (utime + stime from /proc) of the workers alone per call. The host's own CPU is not counted: what is
measured is only the worker's part of a call (the frames, the event loop, the runtime, the handler).

Run (two checkouts, each with its venv: `make .venv/.installed` in each):
    .venv/bin/python tests/bench/bench_worker_cpu.py /tmp/old/.venv/bin/python .venv/bin/python
    # ROUNDS=3 CALLS=12000 by default
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from yima_sdk import contract as c
from yima_sdk._bridge import Request

from sandbox import SandboxHost, SandboxSettings
from sandbox.capabilities import CallInfo
from tests.bench.bench_db import TICK_MS
from tests.platform.conftest import write_probe

ROUNDS = int(os.environ.get("ROUNDS", "3"))
CALLS = int(os.environ.get("CALLS", "12000"))
CALLERS = 16
REQUESTS = {
    "whoami": [Request(method="GET", path="/whoami", user_id="u1")],
    "tx3": [Request(method="POST", path="/db/tx3", query={"n": str(n)}, user_id="u1") for n in range(1000)],
}


class Committed:
    """A provider that decodes each request as the platform's does and answers a commit at once."""

    async def handle(
        self, call: CallInfo, capability: str, operation: str, args: list[Any], kwargs: dict[str, Any]
    ) -> Any:
        op = c.decode_operation(capability, operation, args, kwargs)
        return [1] * len(op.writes) if isinstance(op, c.DbCommit) else None


def cpu_ms(pids: list[int]) -> tuple[float, float]:
    """(user, system) CPU used so far by `pids`, in ms."""
    user = system = 0
    for pid in pids:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
        fields = raw[raw.rindex(b")") + 2 :].split()
        user, system = user + int(fields[11]), system + int(fields[12])
    return user * TICK_MS, system * TICK_MS


async def calls(host: SandboxHost, key: str, figure: str, count: int) -> tuple[float, float]:
    """`count` calls from 16 callers; the workers' (user, system) CPU per call in µs."""
    pids = host.worker_pids(key)
    requests = REQUESTS[figure]

    async def caller(k: int, n: int) -> None:
        for i in range(n):
            response = await host.call(key, requests[(k * n + i) % len(requests)])
            assert response.status in (200, 201), response

    before = cpu_ms(pids)
    await asyncio.gather(*(caller(k, count // CALLERS) for k in range(CALLERS)))
    after = cpu_ms(pids)
    assert host.worker_pids(key) == pids, "a worker was replaced during the round"
    done = count // CALLERS * CALLERS
    return (after[0] - before[0]) * 1000 / done, (after[1] - before[1]) * 1000 / done


async def main(pythons: dict[str, str]) -> None:
    hosts: dict[str, tuple[SandboxHost, str]] = {}
    with tempfile.TemporaryDirectory() as folder:
        try:
            for side, python in pythons.items():
                probe = write_probe(Path(folder) / side, "gov.guangde.benchworker")
                manifest = probe / "miniapp.toml"
                manifest.write_text(manifest.read_text().replace("workers = 1", "workers = 8"))
                # no recycling: a round must see the same worker processes from start to end
                settings = SandboxSettings(python=python, recycle_after_calls=10**9)
                host = SandboxHost(settings, Committed())
                key = host.add_app(probe)
                await host.start()
                hosts[side] = (host, key)
            for host, key in hosts.values():  # warm both
                for figure in REQUESTS:
                    await calls(host, key, figure, 1600)
            runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
            for figure in REQUESTS:
                for side in ("old", "new", "new", "old") * ROUNDS:
                    runs.setdefault((figure, side), []).append(await calls(*hosts[side], figure, CALLS))
        finally:
            for host, _ in hosts.values():
                await host.close()
    load = os.getloadavg()
    print(
        f"{ROUNDS * 2} rounds of {CALLS} calls per figure and side, ABBA, {CALLERS} callers; load {load[0]:.1f}"
    )
    for (figure, side), rows in runs.items():
        total = statistics.median(u + s for u, s in rows)
        user = statistics.median(u for u, _ in rows)
        system = statistics.median(s for _, s in rows)
        print(f"{figure:7} {side:4} worker CPU µs/call {total:6.1f} (user {user:6.1f}, system {system:5.1f})")


if __name__ == "__main__":
    # absolute, not resolved: the venv is the symlink, not the interpreter it points at
    asyncio.run(main({"old": os.path.abspath(sys.argv[1]), "new": os.path.abspath(sys.argv[2])}))
