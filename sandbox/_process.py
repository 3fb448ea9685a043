"""One sandbox worker process as the host sees it: spawn, bridge, one call at a time, usage, kill, reap."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from yima_sdk._bridge import (
    WORKER_DECODER,
    Call,
    CapabilityReply,
    CapabilityRequest,
    Failure,
    FrameError,
    FrameProtocol,
    FrameTooLarge,
    Init,
    JobEvent,
    LayerReport,
    Ready,
    Request,
    Result,
    ScanEvent,
    StartFailed,
)

from sandbox.errors import (
    AppUnavailable,
    DeadlineExceeded,
    LayerMissing,
    ProtocolViolation,
    ResponseTooLarge,
    SandboxError,
    WorkerCrashed,
)

__all__ = ["WorkerProcess"]

# The worker scrubs its environment again itself; this is what it starts with.
# `-I` makes the interpreter ignore PYTHON* variables: `-B` is what switches bytecode writing off, and
# PYTHONDONTWRITEBYTECODE only makes the worker's (reported) environment say so too.
_WORKER_ENV = {"LANG": "C.UTF-8", "MALLOC_ARENA_MAX": "2", "PYTHONDONTWRITEBYTECODE": "1"}
_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


class WorkerProcess:
    """A pre-forked worker; `send` one call at a time; `on_gone(worker)` fires once when it is lost."""

    def __init__(
        self,
        init: Init,
        *,
        python: str,
        required_layers: frozenset[str],
        max_frame: int,
        on_capability: Callable[[WorkerProcess, CapabilityRequest], None],
        on_gone: Callable[[WorkerProcess], None],
    ) -> None:
        self.init = init
        self._python = python or sys.executable
        self._required = required_layers
        self._max_frame = max_frame
        self._on_capability = on_capability
        self._on_gone = on_gone
        self.pid = 0
        self.layers: list[LayerReport] = []
        self.startup_ms = 0.0
        self.calls = 0
        self.cpu_mark = 0.0
        self.rss_budget = 0
        self.alive = False
        self.planned_exit: str | None = None
        """Why the host ended this worker on purpose (recycle, memory); None for crashes and kills."""
        self.lost_error: SandboxError | None = None
        self.current_call: int | None = None
        self.current_user: str | None = None
        self.inflight = 0
        self.log_records = 0
        """`ctx.log` records of the running call."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._protocol: FrameProtocol | None = None
        self._ready: asyncio.Future[None] | None = None
        self._result: asyncio.Future[Result | Failure] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._gone = False
        self.exited: asyncio.Future[int] | None = None
        self._pidfd = -1
        self._stat_fd = -1
        """/proc/<pid>/stat, opened once: usage() is read twice per call, and a read at offset 0 of an open
        /proc file is fresh (an open and a close fewer per read), and never another process's after a reuse."""
        self._idle_start = False

    async def start(self, limit_s: float) -> None:
        """Spawn the process, send Init, wait for Ready; raise LayerMissing / AppUnavailable / WorkerCrashed."""
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        # Read by whoever fails it even when start() was cancelled before awaiting it (the pool closing): an
        # unread failure would be logged as "Future exception was never retrieved" at shutdown.
        self._ready.add_done_callback(lambda ready: ready.cancelled() or ready.exception())
        self.exited = loop.create_future()
        host_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # fork+exec from the event loop thread on purpose: PDEATHSIG follows the forking *thread*
            self._proc = subprocess.Popen(  # noqa: S603, ASYNC220  (fixed argv; fork+exec takes ~1 ms)
                [self._python, "-I", "-B", "-m", "sandbox.worker", str(worker_end.fileno())],
                pass_fds=(worker_end.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=_WORKER_ENV,
                cwd="/",
            )
        finally:
            worker_end.close()
        self.pid = self._proc.pid
        self.alive = True
        # From here on a failure of any kind (the bridge, the event loop, a cancellation) kills the process:
        # a worker that never got its Init would otherwise wait for it for ever.
        try:
            self._deprioritise_startup()
            self._pidfd = os.pidfd_open(self.pid)
            loop.add_reader(self._pidfd, self._on_exit)
            self._stat_fd = os.open(f"/proc/{self.pid}/stat", os.O_RDONLY)
            await self._connect(loop, host_end, limit_s)
        except SandboxError:
            await self._kill_and_reap()
            raise
        except Exception as exc:
            await self._kill_and_reap()
            raise WorkerCrashed(f"worker could not be started: {type(exc).__name__}: {exc}") from exc
        except BaseException:
            self.kill()
            raise
        self._restore_priority()
        cpu, rss = self.usage()
        self.cpu_mark = cpu
        self.rss_budget = rss + self.init.memory_mb * 1024 * 1024

    async def _kill_and_reap(self) -> None:
        """Kill a worker that failed to start and wait (bounded) until it is gone, so the caller's answer
        never races a process still holding the app."""
        self.kill()
        if self.exited is not None and self._pidfd >= 0:
            await asyncio.wait({self.exited}, timeout=1.0)

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, host_end: socket.socket, limit_s: float
    ) -> None:
        """Bridge the host end, send Init and wait for Ready (or the reason there is none)."""
        try:
            _, protocol = await loop.create_unix_connection(
                lambda: FrameProtocol(WORKER_DECODER, self._on_message, self._on_lost, self._max_frame),
                sock=host_end,
            )
        except BaseException:
            host_end.close()
            raise
        self._protocol = protocol
        protocol.send(self.init)
        handle = loop.call_later(
            limit_s, self._fail_ready, WorkerCrashed(f"worker not ready within {limit_s}s")
        )
        try:
            assert self._ready is not None
            await self._ready
        finally:
            handle.cancel()

    def _deprioritise_startup(self) -> None:
        """Start-up (interpreter, imports, layers: tens of ms of CPU) runs at idle priority, so replacing a
        killed worker never takes CPU from workers that are serving calls. Only a root host can restore
        normal priority afterwards, so only a root host does this."""
        if os.geteuid() != 0:
            return
        try:
            os.sched_setscheduler(self.pid, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            self._idle_start = False
        else:
            self._idle_start = True

    def _restore_priority(self) -> None:
        if self._idle_start:
            self._idle_start = False
            try:
                os.sched_setscheduler(self.pid, os.SCHED_OTHER, os.sched_param(0))
            except OSError:
                pass

    def _fail_ready(self, error: SandboxError) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)

    def send(
        self, call_id: int, request: Request | ScanEvent | JobEvent, limit_s: float
    ) -> asyncio.Future[Result | Failure]:
        """Send one call; the future ends with its answer, or with DeadlineExceeded (the worker is killed on
        overrun) or the error the worker was lost with. A caller that stops waiting (cancelled) must not cancel
        the future: the call runs on to one of those ends, and the worker is busy until then."""
        assert self._protocol is not None
        if not self.alive:
            raise self.lost_error or WorkerCrashed("worker is gone")
        loop = asyncio.get_running_loop()
        try:
            self._protocol.send(Call(id=call_id, request=request))
        except FrameTooLarge as exc:
            raise SandboxError(f"request too large: {exc}", code="sandbox.request_too_large") from None
        future: asyncio.Future[Result | Failure] = loop.create_future()
        self._result = future
        self.current_call = call_id
        self.current_user = request.user_id
        self.inflight = 0
        self.log_records = 0
        self._deadline = loop.call_later(limit_s, self._overrun, limit_s)
        return future

    def _end_call(self) -> asyncio.Future[Result | Failure] | None:
        """The running call is over (answered, overran, or the worker is lost): its future, to settle."""
        future, self._result, self.current_call = self._result, None, None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        return future

    def _overrun(self, timeout: float) -> None:
        future = self._end_call()
        if future is None or future.done():
            return
        error = DeadlineExceeded(f"call overran its {timeout * 1000:.0f} ms deadline; worker replaced")
        self.lost_error = error
        future.set_exception(error)
        self.kill()

    def reply(self, message: CapabilityReply) -> None:
        if not self.alive or self._protocol is None:
            return
        try:
            self._protocol.send(message)
        except FrameTooLarge:
            self._protocol.send(
                CapabilityReply(
                    id=message.id,
                    ok=False,
                    code="capability.failed",
                    message="capability reply exceeds the frame limit",
                )
            )
        except ConnectionError:
            pass

    def usage(self) -> tuple[float, int]:
        """(CPU ms used so far, resident bytes) from /proc/<pid>/stat; (0, 0) once the process is gone."""
        try:
            raw = os.pread(self._stat_fd, 1024, 0)
        except OSError:  # reaped (ESRCH), or never opened
            return 0.0, 0
        fields = raw[raw.rindex(b")") + 2 :].split()
        # fields[0] is state (field 3 of stat(5)): utime=14, stime=15, rss=24 -> offsets 11, 12, 21
        return (int(fields[11]) + int(fields[12])) * _TICK_MS, int(fields[21]) * _PAGE

    def kill(self, planned: str | None = None) -> None:
        """SIGKILL the worker (idempotent); `planned` names a deliberate retirement (no backoff)."""
        if planned is not None and self.planned_exit is None and self.alive:
            self.planned_exit = planned
        if self._proc is not None and self._proc.returncode is None:
            # a worker killed while starting still runs at idle priority, and on a busy machine an idle-priority
            # process can take seconds to be scheduled even to die: give it normal priority first
            self._restore_priority()
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._lose(self.lost_error or WorkerCrashed("worker killed"))

    # ---- bridge callbacks ---------------------------------------------------------------------------

    def _on_message(self, message: Any) -> None:
        match message:
            case Result(id=call_id) | Failure(id=call_id):
                if self._result is None or call_id != self.current_call or self._result.done():
                    self._violation(f"answer to call {call_id}, which is not running")
                    return
                future = self._end_call()
                assert future is not None
                future.set_result(message)
            case CapabilityRequest():
                self._on_capability(self, message)
            case Ready():
                if self._ready is None or self._ready.done():
                    self._violation("unexpected Ready")
                    return
                self.layers = message.layers
                self.startup_ms = message.startup_ms
                in_force = {layer.name for layer in message.layers if layer.in_force}
                missing = sorted(self._required - in_force)
                if missing:
                    why = "; ".join(f"{la.name}: {la.detail}" for la in message.layers if la.name in missing)
                    self._ready.set_exception(
                        LayerMissing(
                            f"refusing to run {self.init.app_id}: required isolation layer(s) {', '.join(missing)} "
                            f"not in force on this host ({why})"
                        )
                    )
                else:
                    self._ready.set_result(None)
            case StartFailed():
                self.layers = message.layers
                self._fail_ready(AppUnavailable(f"{self.init.app_id} failed to start: {message.message}"))
            case _:
                self._violation(f"unexpected {type(message).__name__}")

    def _violation(self, what: str) -> None:
        self.lost_error = ProtocolViolation(f"worker broke the bridge protocol ({what}); worker killed")
        self.kill()

    def _on_lost(self, exc: BaseException | None) -> None:
        if isinstance(exc, FrameTooLarge):
            self.lost_error = self.lost_error or ResponseTooLarge(f"{exc}; worker killed")
        elif isinstance(exc, FrameError):
            self.lost_error = self.lost_error or ProtocolViolation(f"{exc}; worker killed")
        else:
            self.lost_error = self.lost_error or WorkerCrashed("worker closed the bridge (crashed or exited)")
        self.kill()

    def _lose(self, error: SandboxError) -> None:
        if self._gone:
            return
        self._gone = True
        self.alive = False
        self.lost_error = self.lost_error or error
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.abort()
        self._fail_ready(self.lost_error)
        future = self._end_call()
        if future is not None and not future.done():
            future.set_exception(self.lost_error)
        self._on_gone(self)

    def _on_exit(self) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        if self._stat_fd >= 0:
            os.close(self._stat_fd)
            self._stat_fd = -1
        assert self._proc is not None
        code = self._proc.wait()
        if self.exited is not None and not self.exited.done():
            self.exited.set_result(code)
        if not self._gone:
            detail = f"signal {-code}" if code < 0 else f"exit status {code}"
            self._lose(WorkerCrashed(f"worker died ({detail})"))
