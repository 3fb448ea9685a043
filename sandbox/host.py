"""SandboxHost: pools of pre-forked workers per mini-app version, supervised from the server's event loop.

Per call it bounds the queue (`sandbox.busy`), enforces the deadline (kills and replaces the worker), checks
each capability request against the manifest, accounts CPU and wall time, and recycles workers that crash,
grow past their memory budget or reach N calls. Crashes are replaced with exponential backoff. Each app
version is a Pool (_pool.py) whose capability requests pass a CapabilityGate (_gate.py); this module gives
apps their uids, watches idle workers' CPU and is what callers use.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from yima_sdk._bridge import JobEvent, Request, Response, ScanEvent
from yima_sdk.manifest import load_manifest

from sandbox._pool import Pool, restart_delay
from sandbox._queue import HungUp
from sandbox.capabilities import CapabilityProvider, InMemoryCapabilityProvider
from sandbox.errors import HostClosed, UnknownApp
from sandbox.limits import app_uid
from sandbox.settings import SandboxSettings

__all__ = ["SandboxHost", "app_uid", "restart_delay"]


class SandboxHost:
    """Runs mini-apps in sandboxed worker pools. Use from one event loop: start(), call()/scan(), close()."""

    def __init__(
        self, settings: SandboxSettings | None = None, provider: CapabilityProvider | None = None
    ) -> None:
        self.settings = settings or SandboxSettings.production()
        self.provider: CapabilityProvider = provider or InMemoryCapabilityProvider()
        self.call_ids = itertools.count(1)
        self.clock: Callable[[], float] = time.monotonic
        self.capability_slots = asyncio.Semaphore(self.settings.capability_concurrency)
        """Provider calls running at once, all apps together (the provider's share of the database pool)."""
        self.closed = False
        self.started = False
        self._pools: dict[str, Pool] = {}
        self._watchdog: asyncio.Task[None] | None = None
        self._uids: dict[str, int] = {}
        """app id -> the uid its workers run under (all versions of one app share it)."""

    def _uid_for(self, app_id: str) -> int:
        """The app's own uid; two apps whose ids hash alike get neighbouring uids on this host instead of one."""
        uid = self._uids.get(app_id)
        if uid is not None:
            return uid
        base, count = self.settings.worker_uid_base, self.settings.worker_uid_count
        taken = set(self._uids.values())
        if len(taken) >= count:
            raise ValueError(f"no free worker uid left in the {count}-uid range")
        uid = app_uid(app_id, base, count)
        while uid in taken:
            uid = base + (uid - base + 1) % count
        self._uids[app_id] = uid
        return uid

    def add_app(self, folder: str | Path) -> str:
        """Register an app folder (validated manifest); its pool starts with start(). Returns `id@version`."""
        folder = Path(folder).resolve()
        manifest = load_manifest(folder)
        if manifest.key in self._pools:
            raise ValueError(f"{manifest.key} is already loaded")
        self._pools[manifest.key] = Pool(self, manifest, folder, self._uid_for(manifest.id))
        return manifest.key

    def _watch(self) -> None:
        """Start the idle-CPU watchdog once, on the host's event loop."""
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(
                self._watch_idle(), name="sandbox-watchdog"
            )

    async def _watch_idle(self) -> None:
        # Threads an app leaves running after its handler returned burn CPU no deadline sees: account idle
        # workers continuously and recycle those that work. (A cgroup v2 CPU quota per app would cap the burn
        # itself; hosts whose cgroup v2 has no cpu controller, like this one, have only this.)
        while not self.closed:
            await asyncio.sleep(self.settings.watchdog_interval_ms / 1000)
            for pool in list(self._pools.values()):
                pool.check_idle()

    async def load(self, folder: str | Path) -> str:
        """Register and start an app on a running host. If it fails to start, it is not registered (a later
        load tries again) and none of its workers is left: LayerMissing or AppUnavailable says why."""
        self._watch()
        key = self.add_app(folder)
        pool = self._pools[key]
        try:
            await pool.start()
        except BaseException:
            if self._pools.get(key) is pool:
                del self._pools[key]
            raise
        return key

    async def start(self) -> None:
        """Pre-fork every registered pool; raise LayerMissing (naming the layer) or AppUnavailable."""
        self.started = True
        self._watch()
        results = await asyncio.gather(
            *(pool.start() for pool in self._pools.values()), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def call(self, key: str, request: Request, *, hung_up: HungUp | None = None) -> Response:
        """Run one HTTP request in app version `key`; raise a SandboxError subclass on any failure.

        The call queues for a worker, first come first served. `hung_up` is awaited while it waits: when it returns
        (the client went away) the call leaves the queue, raising CallerGone. A caller cancelled while waiting
        leaves it too; one cancelled while its call runs leaves the call to finish, and the worker to the next."""
        response = await self._pool(key).invoke(request, hung_up)
        assert isinstance(response, Response)
        return response

    async def scan(self, key: str, event: ScanEvent) -> Any:
        """Deliver a scan event to app version `key`; returns what the app added."""
        return await self._pool(key).invoke(event)

    async def job(self, key: str, event: JobEvent) -> None:
        """Run one job in app version `key`, under the same queue, deadline and limits as a call; raise a
        SandboxError subclass on any failure (MiniAppError with the app's code when its handler raised)."""
        await self._pool(key).invoke(event)

    async def unload(self, key: str) -> None:
        """Stop app version `key`: its queued calls fail, its workers are killed and reaped before this returns.
        Later calls raise UnknownApp; the same version may be loaded again. Unknown keys are ignored."""
        pool = self._pools.pop(key, None)
        if pool is not None:
            await pool.close(UnknownApp(f"app version {key!r} was unloaded"))

    def _pool(self, key: str) -> Pool:
        if self.closed:
            raise HostClosed("the sandbox host is closed")
        pool = self._pools.get(key)
        if pool is None:
            raise UnknownApp(f"no app version {key!r} is loaded")
        return pool

    def metrics(self) -> dict[str, dict[str, Any]]:
        """Per app version: workers, queue, calls, errors by code, CPU and wall time, latency quantiles."""
        return {key: pool.snapshot() for key, pool in self._pools.items()}

    def logs(self, key: str) -> list[dict[str, Any]]:
        """Recent structured log records of one app version (secrets already scrubbed)."""
        return list(self._pool(key).log.records)

    def app_log(self, key: str, level: str, event: str, **fields: Any) -> None:
        """Add a platform record to one app version's log (what the developer reads); no-op if not loaded."""
        pool = self._pools.get(key)
        if pool is not None:
            pool.log.write(level, event, source="platform", **fields)

    def worker_pids(self, key: str) -> list[int]:
        return sorted(w.pid for w in self._pool(key).workers)

    def worker_layers(self, key: str) -> list[dict[str, Any]]:
        """The layer reports of one live worker, as it sent them at start-up."""
        pool = self._pool(key)
        worker = next(iter(pool.workers), None)
        return [
            {"name": la.name, "in_force": la.in_force, "detail": la.detail}
            for la in (worker.layers if worker else [])
        ]

    async def close(self) -> None:
        """Kill every worker and wait until each is reaped: no orphans."""
        if self.closed:
            return
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        await asyncio.gather(*(pool.close() for pool in self._pools.values()))
