"""The queue of one pool: its idle workers and the calls waiting for one, first come first served, each for a
bounded time. A caller that goes away while it waits leaves the queue; one that goes away just as a worker is
handed to it passes the worker on. Pool (_pool.py) owns one."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable

from sandbox._process import WorkerProcess
from sandbox.errors import AppBusy, CallerGone, SandboxError

__all__ = ["HungUp", "Queue"]

HungUp = Callable[[], Awaitable[object]]
"""What a caller may pass with its call: awaited only while the call waits for a worker; when it returns, the caller
has gone (its HTTP client hung up) and the call leaves the queue with CallerGone, never to run."""


class Queue:
    """Idle workers and waiting calls of one app version: a freed worker goes to the oldest waiting call, or idle."""

    def __init__(
        self, key: str, limit: int, counters: collections.Counter[str], drain_s: Callable[[], int]
    ) -> None:
        self.key = key
        self.limit = limit
        """Calls that may wait at once; more are answered busy at once (a bound on memory)."""
        self.counters = counters
        self.drain_s = drain_s
        """Seconds the calls waiting now would take to be served (the Retry-After of a busy answer)."""
        self.idle: collections.deque[WorkerProcess] = collections.deque()
        self.waiters: collections.deque[asyncio.Future[WorkerProcess]] = collections.deque()

    def release(self, worker: WorkerProcess) -> None:
        """A worker is free: the oldest waiting call gets it, or it waits idle."""
        if not worker.alive:
            return
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        self.idle.append(worker)

    def fail(self, error: SandboxError) -> None:
        """Every waiting call fails with `error` (the app cannot start, the pool closes)."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    async def wait(self, limit_s: float, hung_up: HungUp | None) -> WorkerProcess:
        """Wait for a worker, at most `limit_s` (then AppBusy), or until `hung_up` returns (then CallerGone)."""
        if len(self.waiters) >= self.limit:
            self.counters["busy"] += 1
            raise AppBusy(
                f"{self.key} is busy: {len(self.waiters)} calls already waiting; retry shortly",
                retry_after_s=self.drain_s(),
            )
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[WorkerProcess] = loop.create_future()
        self.waiters.append(waiter)

        def give_up() -> None:
            if not waiter.done():
                self.counters["busy"] += 1
                waiter.set_exception(
                    AppBusy(
                        f"{self.key} is busy: no worker became free in {limit_s:.1f}s",
                        retry_after_s=self.drain_s(),
                    )
                )

        def caller_gone(watch: asyncio.Future[object]) -> None:
            if not watch.cancelled() and watch.exception() is None and not waiter.done():
                self.counters["left_the_queue"] += 1
                waiter.set_exception(CallerGone(f"the caller of {self.key} went away while its call waited"))

        handle = loop.call_later(limit_s, give_up)
        # Watched only while waiting: once running, a call finishes whether or not anyone still waits for it.
        watch = asyncio.ensure_future(hung_up()) if hung_up is not None else None
        if watch is not None:
            watch.add_done_callback(caller_gone)
        try:
            return await waiter
        except asyncio.CancelledError:
            self.counters["left_the_queue"] += 1
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed a worker, then cancelled before this task resumed: pass the worker on (to the next
                # caller waiting, or to the idle ones), or the pool would be one worker short for good.
                self.release(waiter.result())
            raise
        finally:
            handle.cancel()
            if watch is not None:
                watch.cancel()
            if waiter in self.waiters:
                self.waiters.remove(waiter)
