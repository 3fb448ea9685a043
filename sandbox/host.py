"""SandboxHost: pools of pre-forked workers per mini-app version, supervised from the server's event loop.

Per call it bounds the queue (`sandbox.busy`), enforces the deadline (kills and replaces the worker), checks
each capability request against the manifest, accounts CPU and wall time, and recycles workers that crash,
grow past their memory budget or reach N calls. Crashes are replaced with exponential backoff.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from yima_sdk._bridge import CapabilityReply, CapabilityRequest, Failure, Init, Request, Response, ScanEvent
from yima_sdk.errors import CapabilityDenied, QuotaExceeded, YimaError
from yima_sdk.manifest import Limits, Manifest, load_manifest

from sandbox._logs import AppLog, LogBudget
from sandbox._process import WorkerProcess
from sandbox.capabilities import CallInfo, CapabilityProvider, InMemoryCapabilityProvider
from sandbox.errors import (
    AppBusy,
    AppUnavailable,
    CpuExceeded,
    HostClosed,
    LayerMissing,
    MiniAppError,
    SandboxError,
    UnknownApp,
)
from sandbox.settings import SandboxSettings, effective_limits

__all__ = ["SandboxHost", "app_uid", "restart_delay"]

_LOG_LEVELS = {"debug", "info", "warning", "error"}


def app_uid(app_id: str, base: int, count: int) -> int:
    """The uid an app's workers run under: derived from the app id alone, so every server process (and every
    restart) runs one app under one uid, and RLIMIT_NPROC counts that app's threads across all of them."""
    digest = hashlib.blake2b(app_id.encode(), digest_size=8, person=b"yima-uid").digest()
    return base + int.from_bytes(digest, "big") % count


def restart_delay(failures: int, base_ms: int, max_ms: int) -> float:
    """Seconds to wait before replacing a worker after `failures` unplanned losses in a row.

    The first loss is replaced at once (one bad call should not slow the app); then 1x, 2x, 4x... the base.
    """
    if failures <= 1:
        return 0.0
    return min(max_ms, base_ms * 2 ** (failures - 2)) / 1000


class _Pool:
    """The workers of one app version, their queue, metrics and log."""

    def __init__(self, host: SandboxHost, manifest: Manifest, folder: Path, uid: int) -> None:
        self.host = host
        self.manifest = manifest
        self.settings = host.settings
        self.limits: Limits = effective_limits(manifest.limits, host.settings)
        self.key = manifest.key
        self.log = AppLog(self.key)
        self.log_budget = LogBudget(
            host.settings.log_records_per_minute, host.settings.max_log_record_bytes, host.clock
        )
        self.inflight = 0
        """Capability requests of all this pool's workers, in flight or waiting for the provider."""
        self.init = Init(
            app_folder=str(folder),
            entry=manifest.entry,
            app_id=manifest.id,
            version=manifest.version,
            capabilities=sorted(manifest.capabilities),
            layers=sorted(self.settings.applied_layers),
            memory_mb=self.limits.memory_mb,
            # a backstop over the worker's whole life; the per-call budget is checked by the host
            cpu_seconds=max(1, self.limits.cpu_ms * min(self.settings.recycle_after_calls, 1000) // 1000),
            max_frame=self.settings.max_frame_bytes,
            uid=uid,
            gid=uid,
            open_files=self.settings.open_files,
            processes=self.settings.processes,
        )
        self.workers: set[WorkerProcess] = set()
        self.spawning: set[WorkerProcess] = set()
        self.closed = False
        """Unloaded (or the host closed): nothing is started or replaced any more."""
        self.close_error: SandboxError = HostClosed("the sandbox host is closing")
        self.idle: collections.deque[WorkerProcess] = collections.deque()
        self.waiters: collections.deque[asyncio.Future[WorkerProcess]] = collections.deque()
        self.starting = 0
        self.failures = 0
        self.broken: SandboxError | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.counters: collections.Counter[str] = collections.Counter()
        self.cpu_ms = 0.0
        self.wall_ms = 0.0
        self.latencies: collections.deque[float] = collections.deque(maxlen=2048)
        self.startup_ms: collections.deque[float] = collections.deque(maxlen=64)

    # ---- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every worker; if any fails, none is left running and the error is LayerMissing or
        AppUnavailable (a worker that crashed or hung while starting is the app failing to start)."""
        results = await asyncio.gather(
            *(self._spawn() for _ in range(self.limits.workers)), return_exceptions=True
        )
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is None:
            return
        if isinstance(failed, SandboxError) and not isinstance(failed, LayerMissing | AppUnavailable):
            failed = AppUnavailable(f"{self.key} failed to start: {failed.message}")
        if isinstance(failed, LayerMissing | AppUnavailable):
            self.broken = failed
        await self.close(failed if isinstance(failed, SandboxError) else None)
        raise failed

    async def _spawn(self) -> None:
        worker = WorkerProcess(
            self.init,
            python=self.settings.python,
            required_layers=self.settings.required_layers,
            max_frame=self.settings.max_frame_bytes,
            on_capability=self._on_capability,
            on_gone=self._on_gone,
        )
        self.starting += 1
        self.spawning.add(worker)
        try:
            await worker.start(self.settings.start_timeout_s)
        except asyncio.CancelledError:
            worker.kill(
                "pool closed"
            )  # cancelled mid-start by close(): its process must not outlive the pool
            raise
        except SandboxError as exc:
            self.log.write("error", "worker failed to start", code=exc.code, reason=exc.message)
            if isinstance(exc, LayerMissing | AppUnavailable):
                self.broken = exc
                self._fail_waiters(exc)
            raise
        finally:
            self.starting -= 1
            self.spawning.discard(worker)
        if self.stopped:
            worker.kill("host closed")
            return
        self.workers.add(worker)
        self.startup_ms.append(worker.startup_ms)
        self.counters["workers_started"] += 1
        self._release(worker)

    def _replace_soon(self, delay: float) -> None:
        async def replace() -> None:
            if delay:
                await asyncio.sleep(delay)
            if self.stopped or self.broken is not None:
                return
            try:
                await self._spawn()
            except SandboxError as exc:
                if not isinstance(exc, LayerMissing | AppUnavailable):
                    self.failures += 1
                    self._replace_soon(
                        restart_delay(
                            self.failures,
                            self.settings.restart_backoff_ms,
                            self.settings.restart_backoff_max_ms,
                        )
                    )

        task = asyncio.get_running_loop().create_task(replace())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _on_gone(self, worker: WorkerProcess) -> None:
        """A worker ended (crash, kill or retirement): drop it and schedule its replacement."""
        was_member = worker in self.workers
        self.workers.discard(worker)
        if worker in self.idle:
            self.idle.remove(worker)
        if self.stopped or not was_member:
            return
        if worker.planned_exit is not None:
            self.counters["recycled"] += 1
            self.log.write("info", "worker recycled", pid=worker.pid, reason=worker.planned_exit)
            delay = 0.0
        else:
            self.failures += 1
            self.counters["worker_losses"] += 1
            error = worker.lost_error
            self.log.write(
                "warning",
                "worker lost",
                pid=worker.pid,
                code=error.code if error else "",
                reason=error.message if error else "",
                consecutive=self.failures,
            )
            delay = restart_delay(
                self.failures, self.settings.restart_backoff_ms, self.settings.restart_backoff_max_ms
            )
        self.counters["restarts"] += 1
        self._replace_soon(delay)

    def _fail_waiters(self, error: SandboxError) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    @property
    def stopped(self) -> bool:
        return self.closed or self.host.closed

    async def close(self, error: SandboxError | None = None) -> None:
        """Kill every worker, those still starting included, and wait until each is reaped."""
        self.closed = True
        if error is not None:
            self.close_error = error
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        self._fail_waiters(self.close_error)
        workers = list(self.workers | self.spawning)
        for worker in workers:
            worker.kill("host closed")
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(w.exited for w in workers if w.exited is not None), return_exceptions=True)

    # ---- calls --------------------------------------------------------------------------------------

    async def _acquire(self, limit_s: float) -> WorkerProcess:
        if self.closed:  # a caller that looked the pool up just before unload()
            raise self.close_error
        while self.idle:
            worker = self.idle.popleft()
            if worker.alive and not self.worked_while_idle(worker):
                worker.cpu_mark, _ = worker.usage()  # the call pays for its own CPU only
                return worker
        if self.broken is not None:
            raise self.broken
        if len(self.waiters) >= self.settings.queue_limit:
            self.counters["busy"] += 1
            raise AppBusy(f"{self.key} is busy: {len(self.waiters)} calls already waiting; retry shortly")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[WorkerProcess] = loop.create_future()
        self.waiters.append(waiter)

        def give_up() -> None:
            if not waiter.done():
                self.counters["busy"] += 1
                waiter.set_exception(AppBusy(f"{self.key} is busy: no worker became free in {limit_s:.1f}s"))

        handle = loop.call_later(limit_s, give_up)
        try:
            return await waiter
        finally:
            handle.cancel()
            if waiter in self.waiters:
                self.waiters.remove(waiter)

    def worked_while_idle(self, worker: WorkerProcess) -> bool:
        """Recycle `worker` if it used more than `idle_cpu_ms` of CPU since its last call ended."""
        cpu, _ = worker.usage()
        used = cpu - worker.cpu_mark
        if used <= self.settings.idle_cpu_ms:
            return False
        self.cpu_ms += used
        self.counters["idle_cpu_recycled"] += 1
        worker.kill(f"used {used:.0f} ms CPU while idle")
        return True

    def check_idle(self) -> None:
        for worker in list(self.idle):
            if worker.alive:
                self.worked_while_idle(worker)

    def _release(self, worker: WorkerProcess) -> None:
        if not worker.alive:
            return
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        self.idle.append(worker)

    async def invoke(self, request: Request | ScanEvent) -> Any:
        if self.broken is not None:
            raise self.broken
        timeout = self.limits.timeout_ms / 1000
        worker = await self._acquire(timeout)
        call_id = next(self.host.call_ids)
        started = time.perf_counter()
        self.counters["calls"] += 1
        try:
            reply = await worker.run(call_id, request, timeout)
        except SandboxError as exc:
            self.counters[exc.code] += 1
            self._account(started, None)
            if worker.alive:
                self._release(worker)
            elif worker.exited is not None:
                # answer only once the offending process is really gone (SIGKILL is delivered asynchronously)
                await asyncio.wait({worker.exited}, timeout=1.0)
            raise
        cpu_ms = self._account(started, worker)
        worker.calls += 1
        self.failures = 0
        _, rss = worker.usage()
        if cpu_ms > self.limits.cpu_ms:
            self.counters["sandbox.cpu_exceeded"] += 1
            worker.kill(f"call used {cpu_ms:.0f} ms CPU")
            raise CpuExceeded(f"call used {cpu_ms:.0f} ms of CPU, over the {self.limits.cpu_ms} ms limit")
        if rss > worker.rss_budget:
            worker.kill(f"resident memory {rss >> 20} MiB over budget")
        elif worker.calls >= self.settings.recycle_after_calls:
            worker.kill(f"served {worker.calls} calls")
        else:
            self._release(worker)
        if isinstance(reply, Failure):
            self.counters["app_errors"] += 1
            raise MiniAppError(reply.message, code=reply.code)
        self.counters["ok"] += 1
        return reply.response if isinstance(request, Request) else reply.value

    def _account(self, started: float, worker: WorkerProcess | None) -> float:
        wall = (time.perf_counter() - started) * 1000
        self.wall_ms += wall
        self.latencies.append(wall)
        if worker is None:
            return 0.0
        cpu_now, _ = worker.usage()
        used = max(0.0, cpu_now - worker.cpu_mark)
        worker.cpu_mark = cpu_now
        self.cpu_ms += used
        return used

    # ---- capabilities ---------------------------------------------------------------------------------

    def _on_capability(self, worker: WorkerProcess, request: CapabilityRequest) -> None:
        if request.call_id != worker.current_call:
            worker.reply(
                CapabilityReply(
                    id=request.id,
                    ok=False,
                    code=CapabilityDenied.code,
                    message="capability requested outside the call it belongs to",
                )
            )
            return
        if request.capability == "log":  # served here at once: bounded by rate and size, not concurrency
            self._log(worker, request)
            return
        if worker.inflight >= self.settings.max_inflight_capabilities:
            self._refuse(worker, request, "too many capability requests in flight for this call")
            return
        if self.inflight >= self.settings.max_app_inflight_capabilities:
            self._refuse(worker, request, "too many capability requests in flight for this app")
            return
        worker.inflight += 1
        self.inflight += 1
        task = asyncio.get_running_loop().create_task(self._serve_capability(worker, request))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _refuse(self, worker: WorkerProcess, request: CapabilityRequest, why: str) -> None:
        self.counters["capability_refused_inflight"] += 1
        worker.reply(CapabilityReply(id=request.id, ok=False, code=QuotaExceeded.code, message=why))

    def _log(self, worker: WorkerProcess, request: CapabilityRequest) -> None:
        self.counters["capability.log"] += 1
        if "log" not in self.manifest.capabilities:
            self.counters["capability_denied"] += 1
            message = "capability 'log' is not declared in miniapp.toml"
            worker.reply(
                CapabilityReply(id=request.id, ok=False, code=CapabilityDenied.code, message=message)
            )
            return
        worker.log_records += 1
        # the app is not told: a log line that is dropped must not change what the app does
        if worker.log_records > self.settings.log_records_per_call or not self.log_budget.allow():
            self.counters["log_dropped"] += 1
        else:
            level = request.operation if request.operation in _LOG_LEVELS else "info"
            event, fields = self.log_budget.fields(
                str(request.args[0]) if request.args else "", request.kwargs
            )
            self.log.add(level, event, "app", {**fields, "call_id": request.call_id})
        worker.reply(CapabilityReply(id=request.id, ok=True, value=None))

    async def _serve_capability(self, worker: WorkerProcess, request: CapabilityRequest) -> None:
        self.counters[f"capability.{request.capability}"] += 1
        try:
            if request.capability not in self.manifest.capabilities:
                raise CapabilityDenied(f"capability {request.capability!r} is not declared in miniapp.toml")
            call = CallInfo(
                app_id=self.manifest.id,
                version=self.manifest.version,
                call_id=request.call_id,
                user_id=worker.current_user,
            )
            async with self.host.capability_slots:
                if request.call_id != worker.current_call:
                    raise CapabilityDenied("capability requested outside the call it belongs to")
                value = await self.host.provider.handle(
                    call, request.capability, request.operation, request.args, request.kwargs
                )
            reply = CapabilityReply(id=request.id, ok=True, value=value)
        except YimaError as exc:
            if isinstance(exc, CapabilityDenied):
                self.counters["capability_denied"] += 1
            reply = CapabilityReply(id=request.id, ok=False, code=exc.code, message=exc.message)
        except Exception as exc:  # a provider bug must not reach the app in detail, nor stop the host
            self.log.write(
                "error",
                "capability provider failed",
                capability=request.capability,
                operation=request.operation,
                error=type(exc).__name__,
            )
            reply = CapabilityReply(
                id=request.id,
                ok=False,
                code="capability.failed",
                message=f"{request.capability}.{request.operation} failed; try again later",
            )
        finally:
            worker.inflight -= 1
            self.inflight -= 1
        if request.call_id == worker.current_call:
            worker.reply(reply)

    def snapshot(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def quantile(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

        return {
            "app": self.key,
            "workers": len(self.workers),
            "idle": len(self.idle),
            "starting": self.starting,
            "queued": len(self.waiters),
            "cpu_ms_total": round(self.cpu_ms, 1),
            "wall_ms_total": round(self.wall_ms, 1),
            "wall_ms_p50": round(quantile(0.50), 3),
            "wall_ms_p99": round(quantile(0.99), 3),
            "startup_ms_last": round(self.startup_ms[-1], 1) if self.startup_ms else None,
            "broken": self.broken.code if self.broken else None,
            **dict(self.counters),
        }


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
        self._pools: dict[str, _Pool] = {}
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
        self._pools[manifest.key] = _Pool(self, manifest, folder, self._uid_for(manifest.id))
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

    async def call(self, key: str, request: Request) -> Response:
        """Run one HTTP request in app version `key`; raise a SandboxError subclass on any failure."""
        response = await self._pool(key).invoke(request)
        assert isinstance(response, Response)
        return response

    async def scan(self, key: str, event: ScanEvent) -> Any:
        """Deliver a scan event to app version `key`; returns what the app added."""
        return await self._pool(key).invoke(event)

    async def unload(self, key: str) -> None:
        """Stop app version `key`: its queued calls fail, its workers are killed and reaped before this returns.
        Later calls raise UnknownApp; the same version may be loaded again. Unknown keys are ignored."""
        pool = self._pools.pop(key, None)
        if pool is not None:
            await pool.close(UnknownApp(f"app version {key!r} was unloaded"))

    def _pool(self, key: str) -> _Pool:
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
