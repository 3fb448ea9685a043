"""One pool: the pre-forked workers of one app version, their queue (_queue.py), deadlines, CPU and memory
accounting, replacement with backoff, metrics and log. SandboxHost (host.py) keeps one per loaded app version.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yima_sdk._bridge import Failure, Init, JobEvent, Request, Result, ScanEvent
from yima_sdk.manifest import Limits, Manifest

from sandbox._gate import CapabilityGate
from sandbox._logs import AppLog, LogBudget
from sandbox._process import WorkerProcess
from sandbox._queue import HungUp, Queue
from sandbox.errors import (
    AppUnavailable,
    CpuExceeded,
    HostClosed,
    LayerMissing,
    MiniAppError,
    SandboxError,
)
from sandbox.settings import effective_limits

if TYPE_CHECKING:
    from sandbox.host import SandboxHost

__all__ = ["Pool", "restart_delay"]


def restart_delay(failures: int, base_ms: int, max_ms: int) -> float:
    """Seconds to wait before replacing a worker after `failures` unplanned losses in a row.

    The first loss is replaced at once (one bad call should not slow the app); then 1x, 2x, 4x... the base.
    """
    if failures <= 1:
        return 0.0
    return min(max_ms, base_ms * 2 ** (failures - 2)) / 1000


class Pool:
    """The workers of one app version, their queue, metrics and log."""

    def __init__(self, host: SandboxHost, manifest: Manifest, folder: Path, uid: int) -> None:
        self.host = host
        self.manifest = manifest
        self.settings = host.settings
        self.limits: Limits = effective_limits(manifest.limits, host.settings)
        self.key = manifest.key
        self.log = AppLog(self.key)
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
        self.starting = 0
        self.failures = 0
        self.broken: SandboxError | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.counters: collections.Counter[str] = collections.Counter()
        self.queue = Queue(self.key, self.settings.queue_limit, self.counters, self.drain_s)
        self.cpu_ms = 0.0
        self.wall_ms = 0.0
        self.latencies: collections.deque[float] = collections.deque(maxlen=2048)
        self.startup_ms: collections.deque[float] = collections.deque(maxlen=64)
        self.gate = CapabilityGate(
            manifest,
            self.settings,
            host.provider,
            host.capability_slots,
            self.log,
            LogBudget(self.settings.log_records_per_minute, self.settings.max_log_record_bytes, host.clock),
            self.counters,
            self.tasks,
        )

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
            on_capability=self.gate.on_request,
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
                self.queue.fail(exc)
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
        self.queue.release(worker)

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
        if worker in self.queue.idle:
            self.queue.idle.remove(worker)
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
        self.queue.fail(self.close_error)
        workers = list(self.workers | self.spawning)
        for worker in workers:
            worker.kill("host closed")
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(w.exited for w in workers if w.exited is not None), return_exceptions=True)

    # ---- calls --------------------------------------------------------------------------------------

    async def _acquire(self, limit_s: float, hung_up: HungUp | None) -> WorkerProcess:
        if self.closed:  # a caller that looked the pool up just before unload()
            raise self.close_error
        while self.queue.idle:
            worker = self.queue.idle.popleft()
            if not worker.alive:
                continue
            cpu, _ = worker.usage()  # one read of /proc (a system call and the kernel's formatting) for both:
            if not self.worked_while_idle(worker, cpu):
                worker.cpu_mark = cpu  # the call pays for its own CPU only
                return worker
        if self.broken is not None:
            raise self.broken
        return await self.queue.wait(limit_s, hung_up)

    def drain_s(self) -> int:
        """Seconds the calls waiting now would take to be served, from recent calls' wall time (at least 1)."""
        recent = list(self.latencies)[-64:]
        mean_ms = sum(recent) / len(recent) if recent else 100.0
        workers = max(1, len(self.workers))
        return max(1, min(60, math.ceil(len(self.queue.waiters) * mean_ms / workers / 1000)))

    def worked_while_idle(self, worker: WorkerProcess, cpu: float | None = None) -> bool:
        """Recycle `worker` if it used more than `idle_cpu_ms` of CPU since its last call ended (`cpu`: its CPU ms
        read just now, if the caller has it)."""
        if cpu is None:
            cpu, _ = worker.usage()
        used = cpu - worker.cpu_mark
        if used <= self.settings.idle_cpu_ms:
            return False
        self.cpu_ms += used
        self.counters["idle_cpu_recycled"] += 1
        worker.kill(f"used {used:.0f} ms CPU while idle")
        return True

    def check_idle(self) -> None:
        for worker in list(self.queue.idle):
            if worker.alive:
                self.worked_while_idle(worker)

    async def invoke(self, request: Request | ScanEvent | JobEvent, hung_up: HungUp | None = None) -> Any:
        if self.broken is not None:
            raise self.broken
        worker = await self._acquire(self.settings.queue_wait_ms / 1000, hung_up)
        call_id = next(self.host.call_ids)
        started = time.perf_counter()
        self.counters["calls"] += 1
        try:
            answer = worker.send(call_id, request, self.limits.timeout_ms / 1000)
        except SandboxError as exc:  # not sent (too large): the worker is free at once
            self._failed(worker, started, exc)
            raise
        try:
            # shielded: a caller cancelled while the app works must not cancel the call (the worker would answer
            # a call it no longer has, and be killed for it, or hang on without a deadline)
            reply = await asyncio.shield(answer)
        except asyncio.CancelledError:
            self.counters["finished_without_caller"] += 1
            answer.add_done_callback(functools.partial(self._settle_unwaited, worker, started))
            raise
        except SandboxError as exc:
            self._failed(worker, started, exc)
            if not worker.alive and worker.exited is not None:
                # answer only once the offending process is really gone (SIGKILL is delivered asynchronously)
                await asyncio.wait({worker.exited}, timeout=1.0)
            raise
        self._answered(worker, started, reply)
        if isinstance(reply, Failure):
            self.counters["app_errors"] += 1
            raise MiniAppError(reply.message, code=reply.code)
        self.counters["ok"] += 1
        return reply.response if isinstance(request, Request) else reply.value

    def _failed(self, worker: WorkerProcess, started: float, error: SandboxError) -> None:
        """A call failed in the sandbox: count it; a worker that outlived the failure serves the next caller."""
        self.counters[error.code] += 1
        self._account(started, None)
        if worker.alive:
            self.queue.release(worker)

    def _answered(self, worker: WorkerProcess, started: float, reply: Result | Failure) -> None:
        """A call was answered: account it, then hand the worker to the next caller or retire it (memory, age);
        CpuExceeded if the call used more CPU than the app may."""
        cpu_ms, rss = self._account(started, worker)
        worker.calls += 1
        self.failures = 0
        if cpu_ms > self.limits.cpu_ms:
            self.counters["sandbox.cpu_exceeded"] += 1
            worker.kill(f"call used {cpu_ms:.0f} ms CPU")
            raise CpuExceeded(f"call used {cpu_ms:.0f} ms of CPU, over the {self.limits.cpu_ms} ms limit")
        if rss > worker.rss_budget:
            worker.kill(f"resident memory {rss >> 20} MiB over budget")
        elif worker.calls >= self.settings.recycle_after_calls:
            worker.kill(f"served {worker.calls} calls")
        else:
            self.queue.release(worker)

    def _settle_unwaited(
        self, worker: WorkerProcess, started: float, answer: asyncio.Future[Result | Failure]
    ) -> None:
        """The end of a call whose caller went away while it ran: the same accounting, nobody to tell."""
        if (
            answer.cancelled()
        ):  # nothing cancels a call's future; if something did, the worker's state is unknown
            worker.kill()
            return
        error = answer.exception()
        if error is not None:
            self._failed(
                worker, started, error if isinstance(error, SandboxError) else SandboxError(repr(error))
            )
            return
        with contextlib.suppress(CpuExceeded):
            self._answered(worker, started, answer.result())

    def _account(self, started: float, worker: WorkerProcess | None) -> tuple[float, int]:
        """(CPU ms the call used, the worker's resident bytes now), from one read of /proc."""
        wall = (time.perf_counter() - started) * 1000
        self.wall_ms += wall
        self.latencies.append(wall)
        if worker is None:
            return 0.0, 0
        cpu_now, rss = worker.usage()
        used = max(0.0, cpu_now - worker.cpu_mark)
        worker.cpu_mark = cpu_now
        self.cpu_ms += used
        return used, rss

    def snapshot(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def quantile(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

        return {
            "app": self.key,
            "workers": len(self.workers),
            "idle": len(self.queue.idle),
            "starting": self.starting,
            "queued": len(self.queue.waiters),
            "cpu_ms_total": round(self.cpu_ms, 1),
            "wall_ms_total": round(self.wall_ms, 1),
            "wall_ms_p50": round(quantile(0.50), 3),
            "wall_ms_p99": round(quantile(0.99), 3),
            "startup_ms_last": round(self.startup_ms[-1], 1) if self.startup_ms else None,
            "broken": self.broken.code if self.broken else None,
            **dict(self.counters),
        }
