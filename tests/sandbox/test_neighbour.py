"""A neighbour's calls are not held up while other apps attack: its p99 under attack stays within 2x of its
quiet p99, with the quiet value floored at 25 ms before doubling.

What this must catch is a neighbour stalled behind an attacker: waiting for an attacker's deadline (2 s by
default) or for a host loop blocked by supervision, which costs hundreds of milliseconds. The quiet p99 itself is a
fraction of a millisecond, of the order of scheduler noise on a 2-core machine whose other core is busy
(a worker being re-spawned with its isolation layers, the kernel reaping a killed one): a floor of a few
milliseconds failed on that noise alone. The finer figure is a benchmark's job, not a test's.
"""

from __future__ import annotations

import asyncio
import time

from sandbox_helpers import get, running_host

from sandbox import SandboxError, SandboxHost

FLOOR_MS = 25.0
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
