"""A neighbour's p99 latency while another app attacks stays within 2x of its quiet p99.

The quiet p99 of a sandboxed call here is a fraction of a millisecond, where scheduler noise on a shared
2-core machine (a worker being re-spawned, the kernel reaping a killed one) is of the same order. So the
quiet value is floored at 2.5 ms before doubling: the check still catches what matters (a neighbour stalled
behind the attacker for a deadline, a host loop blocked by supervision: tens to hundreds of ms) without
failing on sub-millisecond jitter.
"""

from __future__ import annotations

import asyncio
import time

from sandbox_helpers import get, running_host

from sandbox import SandboxError, SandboxHost

FLOOR_MS = 2.5
SAMPLES = 600


async def _p99(host: SandboxHost, key: str, samples: int) -> float:
    latencies = []
    for _ in range(samples):
        started = time.perf_counter()
        await host.call(key, get("/ping"))
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    return latencies[int(0.99 * len(latencies)) - 1]


async def test_neighbour_p99_holds_during_attacks() -> None:
    attackers = ["spin_forever", "fork_bomb", "allocate_4gb", "garbage_frames"]
    async with running_host("neighbour", *attackers) as (host, keys):
        neighbour = keys["neighbour"]
        await _p99(host, neighbour, 100)  # warm up
        quiet = await _p99(host, neighbour, SAMPLES)

        stop = asyncio.Event()
        attacks = 0

        async def attack(name: str) -> None:
            nonlocal attacks
            while not stop.is_set():
                try:
                    await host.call(keys[name], get("/attack"))
                except SandboxError:
                    attacks += 1

        tasks = [asyncio.ensure_future(attack(name)) for name in attackers]
        try:
            loud = await _p99(host, neighbour, SAMPLES * 3)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
    print(f"quiet p99 {quiet:.3f} ms, under attack {loud:.3f} ms, {attacks} attacks")
    assert attacks > 20  # the attack really ran alongside the measurement
    allowed = 2 * max(quiet, FLOOR_MS)
    assert loud <= allowed, f"neighbour p99 {loud:.2f} ms under attack vs quiet {quiet:.2f} ms"
