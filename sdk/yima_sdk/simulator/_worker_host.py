"""The simulator's host side of an app's workers: child processes running the yima_sdk worker runtime over the
sandbox bridge, with the host's rules: one call at a time per worker and up to the manifest's `limits.workers`
calls at once (as production's pool: two deliveries of one app may run side by side; a call whose caller is
cancelled runs to its end before its worker takes another), a deadline per call, capabilities checked against
the manifest and served by the simulated platform, `log` kept by the host, a crashed worker replaced.
`AsyncSimulator` (`_host.py`) builds the calls, as the gateway, a terminal and the job scheduler would.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from yima_sdk._bridge import (
    WORKER_DECODER,
    Call,
    CapabilityReply,
    CapabilityRequest,
    Failure,
    FrameError,
    FrameProtocol,
    Init,
    JobEvent,
    LayerReport,
    Ready,
    Request,
    Result,
    ScanEvent,
    StartFailed,
)
from yima_sdk._isolation import app_uid
from yima_sdk._isolation.limits import LAYERS
from yima_sdk.errors import CapabilityDenied, YimaError
from yima_sdk.manifest import Manifest
from yima_sdk.simulator._platform import CallInfo, SimulatedPlatform

__all__ = ["AppFailure", "WorkerHost"]

_WORKER_ENV = {"LANG": "C.UTF-8"}
_LOG_LEVELS = frozenset({"debug", "info", "warning", "error"})
_DEADLINE = "sandbox.deadline_exceeded"


class AppFailure(YimaError):
    """The app (or its worker) failed a call; `code` is the stable code the platform would report."""


def _unwaited(call: asyncio.Task[Result | Failure]) -> None:
    """The end of a call whose caller went away: nobody to tell of its failure (asyncio would log it unread)."""
    if not call.cancelled():
        call.exception()


class _Worker:
    """The child process, our end of its bridge, and the call it is running."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        loop = asyncio.get_running_loop()
        self.proc = proc
        self.protocol: FrameProtocol | None = None
        self.ready: asyncio.Future[None] = loop.create_future()
        self.answer: asyncio.Future[Result | Failure] | None = None
        self.current: CallInfo | None = None

    def fail(self, error: YimaError) -> None:
        """Fail whatever waits on this worker (its start, its running call)."""
        for future in (self.ready, self.answer):
            if future is not None and not future.done():
                future.set_exception(error)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.protocol is not None and self.protocol.transport is not None:
            self.protocol.transport.abort()


class WorkerHost:
    """Spawns the app's workers on demand (up to `limits.workers`) and runs each call on an idle one."""

    def __init__(
        self,
        folder: Path,
        manifest: Manifest,
        platform: SimulatedPlatform,
        python: str,
        logs: list[dict[str, Any]],
    ) -> None:
        self.folder = folder
        self.manifest = manifest
        self.platform = platform
        self.python = python
        self.logs = logs
        self.layers: list[LayerReport] = []
        self.startup_ms = 0.0
        self._idle: list[_Worker] = []
        """Started workers waiting for a call; the last one used is taken first."""
        self._busy: set[_Worker] = set()
        self._slots = asyncio.Semaphore(manifest.limits.workers)
        self._call_ids = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        """Capability requests being served, and the calls running (a cancelled caller's among them)."""

    @property
    def worker(self) -> _Worker | None:
        """The worker the next call runs on, else a busy one (None while none is started)."""
        self._idle = [w for w in self._idle if w.proc.poll() is None]
        return self._idle[-1] if self._idle else next(iter(self._busy), None)

    async def _take(self) -> _Worker:
        """The idle worker used last (its pid stays the same from call to call), or a new one."""
        self._idle = [w for w in self._idle if w.proc.poll() is None]
        return self._idle.pop() if self._idle else await self._spawn()

    async def start(self) -> None:
        """Start the pool's `limits.workers` workers at once, as production pre-forks them (so calls made together
        run together from the first one); AppFailure(`miniapp.load_failed`) if the app cannot load."""
        missing = self.manifest.limits.workers - len(self._idle) - len(self._busy)
        started = await asyncio.gather(*(self._spawn() for _ in range(missing)), return_exceptions=True)
        workers = [w for w in started if isinstance(w, _Worker)]
        failed = next((e for e in started if isinstance(e, BaseException)), None)
        if failed is not None:
            for worker in workers:
                worker.kill()
            raise failed
        self._idle.extend(workers)

    async def _spawn(self) -> _Worker:
        """Spawn a worker and wait for Ready."""
        loop = asyncio.get_running_loop()
        host_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            proc = subprocess.Popen(  # noqa: S603, ASYNC220  (fixed argv; fork+exec takes ~1 ms)
                [self.python, "-I", "-B", "-m", "yima_sdk._simworker", str(worker_end.fileno())],
                pass_fds=(worker_end.fileno(),),
                stdin=subprocess.DEVNULL,
                env=_WORKER_ENV,
                cwd="/",
            )
        finally:
            worker_end.close()
        worker = _Worker(proc)
        _, protocol = await loop.create_unix_connection(
            lambda: FrameProtocol(
                WORKER_DECODER,
                lambda message: self._on_message(worker, message),
                lambda exc: self._lose(worker, "worker closed the bridge (crashed or exited)"),
            ),
            sock=host_end,
        )
        worker.protocol = protocol
        limits = self.manifest.limits
        uid = app_uid(self.manifest.id)  # the id production runs this app under (used only when root)
        protocol.send(
            Init(
                app_folder=str(self.folder),
                entry=self.manifest.entry,
                app_id=self.manifest.id,
                version=self.manifest.version,
                capabilities=sorted(self.manifest.capabilities),
                # every layer where the kernel has them; each one the machine cannot apply is reported missing
                layers=list(LAYERS) if sys.platform == "linux" else [],
                memory_mb=limits.memory_mb,
                # production's worker budget (cpu_ms for each of up to 1000 calls): the worker is long-lived
                cpu_seconds=max(1, limits.cpu_ms),
                uid=uid,
                gid=uid,
            )
        )
        try:
            await asyncio.wait_for(worker.ready, 30)
        except BaseException:
            worker.kill()
            raise
        return worker

    async def close(self) -> None:
        """Kill and reap the workers."""
        for task in list(self._tasks):
            task.cancel()
        for worker in [*self._idle, *self._busy]:
            worker.kill()
        self._idle.clear()
        self._busy.clear()

    async def invoke(self, request: Request | ScanEvent | JobEvent) -> Any:
        """Run one call on an idle worker (starting one if none is idle and fewer than `limits.workers` run): its
        response or value, AppFailure if it failed. A caller cancelled while the call runs leaves it running to its
        end (at most its deadline, its capability requests served), as production's pool does: only then do its
        worker and its place among the `limits.workers` serve the next call."""
        await self._slots.acquire()  # up to limits.workers calls at once, one per worker, as in the sandbox
        try:
            worker = await self._take()
        except BaseException:
            self._slots.release()
            raise
        call = asyncio.get_running_loop().create_task(self._run(worker, request))
        self._tasks.add(call)
        call.add_done_callback(self._tasks.discard)
        try:
            # shielded: cancelling the caller must not cancel the call, or its worker would be handed on while it
            # still runs the call (the next call would share it) and the call's capability requests be refused
            reply = await asyncio.shield(call)
        except asyncio.CancelledError:
            call.add_done_callback(_unwaited)
            raise
        if isinstance(reply, Failure):
            raise AppFailure(reply.message, code=reply.code)
        return reply.response if isinstance(request, Request) else reply.value

    async def _run(self, worker: _Worker, request: Request | ScanEvent | JobEvent) -> Result | Failure:
        """The call on `worker`, to its answer or its deadline; then the worker and its slot are free."""
        try:
            assert worker.protocol is not None
            self._busy.add(worker)
            self._call_ids += 1
            call_id = self._call_ids
            worker.current = CallInfo(
                app_id=self.manifest.id,
                version=self.manifest.version,
                call_id=call_id,
                user_id=request.user_id,
            )
            answer: asyncio.Future[Result | Failure] = asyncio.get_running_loop().create_future()
            worker.answer = answer
            timeout = self.manifest.limits.timeout_ms / 1000
            try:
                worker.protocol.send(Call(id=call_id, request=request))
                return await asyncio.wait_for(asyncio.shield(answer), timeout)
            except TimeoutError:
                worker.kill()
                raise AppFailure(
                    f"call overran its {timeout * 1000:.0f} ms deadline (miniapp.toml limits.timeout_ms); "
                    "worker replaced",
                    code=_DEADLINE,
                ) from None
        finally:
            worker.answer = None
            worker.current = None
            self._busy.discard(worker)
            if worker.proc.poll() is None:
                self._idle.append(worker)
            self._slots.release()

    def _on_message(self, worker: _Worker, message: Any) -> None:
        match message:
            case Ready():
                self.layers = message.layers
                self.startup_ms = message.startup_ms
                if not worker.ready.done():
                    worker.ready.set_result(None)
            case StartFailed():
                self.layers = message.layers
                worker.fail(AppFailure(message.message, code=message.code))
            case Result() | Failure():
                answer = worker.answer
                if answer is not None and not answer.done() and worker.current is not None:
                    if message.id == worker.current.call_id:
                        answer.set_result(message)
            case CapabilityRequest():
                task = asyncio.get_running_loop().create_task(self._serve_capability(worker, message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            case _:
                self._lose(worker, f"worker broke the bridge protocol ({type(message).__name__})")

    def _lose(self, worker: _Worker, why: str) -> None:
        """A worker is gone or broken: reap it; a later call starts a fresh one."""
        if worker in self._idle:
            self._idle.remove(worker)
        worker.kill()
        worker.fail(AppFailure(why, code="sandbox.worker_crashed"))

    async def _serve_capability(self, worker: _Worker, request: CapabilityRequest) -> None:
        call = worker.current
        try:
            if call is None or request.call_id != call.call_id:
                raise CapabilityDenied("capability requested outside the call it belongs to")
            if request.capability not in self.manifest.capabilities:
                raise CapabilityDenied(f"capability {request.capability!r} is not declared in miniapp.toml")
            if request.capability == "log":
                level = request.operation if request.operation in _LOG_LEVELS else "info"
                event = str(request.args[0]) if request.args else ""
                self.logs.append(
                    {"level": level, "event": event, "call_id": request.call_id, **request.kwargs}
                )
                value = None
            else:
                value = await self.platform.handle(
                    call, request.capability, request.operation, request.args, request.kwargs
                )
            reply = CapabilityReply(id=request.id, ok=True, value=value)
        except YimaError as exc:
            reply = CapabilityReply(id=request.id, ok=False, code=exc.code, message=exc.message)
        except Exception as exc:  # a simulator bug: show it, answer like the platform would
            print(
                f"yima-sdk simulator: {request.capability}.{request.operation} failed: {exc!r}",
                file=sys.stderr,
            )
            reply = CapabilityReply(
                id=request.id, ok=False, code="capability.failed", message="the capability failed; try again"
            )
        if worker.protocol is None or worker.proc.poll() is not None:
            return
        try:
            worker.protocol.send(reply)
        except (FrameError, ConnectionError):
            pass
