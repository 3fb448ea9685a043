"""Shared helpers for the sandbox tests: app folders and a host that always closes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from yima_sdk import Request, Response

from sandbox import AppBusy, SandboxHost, SandboxSettings
from sandbox.capabilities import CapabilityProvider

APPS = Path(__file__).parent / "apps"


def get(path: str, **query: str) -> Request:
    return Request(method="GET", path=path, query=query)


@asynccontextmanager
async def running_host(
    *apps: str, settings: SandboxSettings | None = None, provider: CapabilityProvider | None = None
) -> AsyncIterator[tuple[SandboxHost, dict[str, str]]]:
    """Start a host with the named apps from tests/sandbox/apps; yield (host, {app name: key})."""
    host = SandboxHost(settings or SandboxSettings.production(), provider)
    keys = {name: host.add_app(APPS / name) for name in apps}
    try:
        await host.start()
        yield host, keys
    finally:
        await host.close()


def alive(pid: int) -> bool:
    """Is `pid` a running process? A killed-but-not-yet-reaped zombie counts as dead."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            state = stat.read().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


async def all_dead(pids: list[int], within_s: float = 5.0) -> bool:
    """Have all `pids` died? SIGKILL is asynchronous: the kernel may still be tearing a big process down when
    the host has already answered, so poll for the event (bounded) instead of checking one instant."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while any(alive(pid) for pid in pids):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def exists(pid: int) -> bool:
    """Is there any process (even a zombie) with this pid? False once it has been reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def live_workers() -> set[int]:
    """Pids of this process's sandbox worker children that are still running (zombies excluded)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                ppid = int(stat.read().rpartition(")")[2].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                argv = cmdline.read().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"sandbox.worker" in argv and alive(int(entry)):
            found.add(int(entry))
    return found


async def no_workers_left(before: set[int], within_s: float = 5.0) -> bool:
    """Are all worker children started since `before` gone? Bounded polling, as in all_dead: a killed worker
    may take a moment to die on a loaded machine, but one left waiting never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while live_workers() - before:
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def when_replaced(host: SandboxHost, key: str, request: Request, limit_s: float = 15.0) -> Response:
    """Call once a killed or recycled worker's replacement is up. Starting one (its isolation layers applied)
    takes a while, more than the pool's wait for a free worker on a busy machine: `busy` until then, boundedly."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        try:
            return await host.call(key, request)
        except AppBusy:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)
