"""`yima serve --workers N`: N uvicorn worker processes, each listening on the port with its own socket.

Why not uvicorn's own `--workers`: its workers share one listening socket, and the worker that wakes first accepts a
whole burst of new connections. Terminals connect in bursts (a bus depot's terminals all come back online at
once), and the bench's 64 terminals all landed on one worker: 97% CPU on one, 0.2% on the other, half the machine
idle. Here each worker binds the port with SO_REUSEPORT, so the kernel spreads new connections across the workers
by their address hash, and a worker's connections stay with it.

The supervisor (this process) restarts a worker that dies, after a pause that grows while it keeps dying, but the
pause never leaves the node without a live worker: when every worker is down, the one whose pause ends first is
started at once, and the log says why the others wait. A worker that fails before it serves (bad settings, database unreachable at start-up) stops the whole server with exit
status 1, since every restart would fail the same way. SIGINT or SIGTERM stops the workers gracefully (SIGTERM,
then SIGKILL after `STOP_TIMEOUT_S`) and exits 0.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from server.settings import Settings

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("yima.workers")

STARTUP_FAILURE = 3
"""uvicorn's exit status for a worker whose start-up (lifespan) failed."""
STOP_TIMEOUT_S = 30.0
RESTART_PAUSE_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
STABLE_AFTER_S = 60.0
"""A worker that ran this long before dying counts as healthy: its replacement starts without a pause."""
BACKLOG = 2048

_spawn = multiprocessing.get_context("spawn")


class PortInUse(RuntimeError):
    pass


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def check_port_free(host: str, port: int) -> None:
    """Fail early, with a clear message, when something (another yima included) holds the port.

    A plain bind, without SO_REUSEPORT: the workers' own binds would otherwise join another server's group.
    """
    _plain_socket(host, port).close()


def reuse_port_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(False)
    return sock


def listening_sockets(settings: Settings, *, reuse_port: bool) -> list[socket.socket]:
    """The public socket and, when YIMA_METRICS_PORT is set, the operations socket GET /metrics answers on."""
    bind = reuse_port_socket if reuse_port else _plain_socket
    sockets = [bind(settings.host, settings.port)]
    if settings.metrics_port:
        sockets.append(bind(settings.metrics_host, settings.metrics_port))
    return sockets


def _plain_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port; PortInUse, naming the address, when something holds it."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(False)
    return sock


def uvicorn_config(settings: Settings) -> uvicorn.Config:
    """How every yima process runs uvicorn.

    Forwarded headers: uvicorn believes X-Forwarded-For from 127.0.0.1 by default, so anyone on the machine (or a
    local proxy that passes the header through) chose the client address the per-address OTP limit counts. Only the
    configured YIMA_TRUSTED_PROXIES are believed, and none when it is empty.
    """
    import uvicorn

    trusted = list(settings.trusted_proxies)
    return uvicorn.Config(
        "server.asgi:app_factory",
        factory=True,
        log_config=None,
        access_log=False,
        lifespan="on",
        backlog=BACKLOG,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or [],
    )


def serve_one(
    settings: Settings,
    *,
    reuse_port: bool,
    sockets: list[socket.socket] | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """One uvicorn server on the public socket (and the metrics socket); exits STARTUP_FAILURE if it never served.

    `sockets`: already bound (`yima dev` binds before its slow start, so a taken port fails at once).
    `on_ready` runs once the server listens (`yima dev` prints its banner then, never before).
    """
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if on_ready is not None and self.started and not self.should_exit:
                on_ready()

    server = Server(uvicorn_config(settings))
    try:
        server.run(sockets=sockets or listening_sockets(settings, reuse_port=reuse_port))
    except KeyboardInterrupt:
        pass
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _die_with_parent() -> None:
    """Linux: the kernel sends this worker SIGTERM if the supervisor dies without stopping it (SIGKILL, OOM)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker_main() -> None:
    """A worker process: its own listening sockets, one uvicorn server over the app from YIMA_* variables."""
    from server.settings import load_settings

    _die_with_parent()
    serve_one(load_settings(), reuse_port=True)


class _Slot:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: BaseProcess | None = None
        self.started_at = 0.0
        self.failures = 0
        self.restart_at: float | None = None
        self.generation = 0


class Supervisor:
    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.slots = [_Slot(i) for i in range(settings.workers)]
        self._clock = clock
        self._stop = threading.Event()
        self._failed = False

    def _new_process(self, slot: _Slot) -> BaseProcess:
        return _spawn.Process(target=_worker_main, name=f"yima-worker-{slot.index}")

    def _start(self, slot: _Slot) -> None:
        process = self._new_process(slot)
        process.start()
        slot.process, slot.started_at, slot.restart_at = process, self._clock(), None
        slot.generation += 1
        log.info("worker started", extra={"worker": slot.index, "pid": process.pid})

    def _on_exit(self, slot: _Slot) -> None:
        assert slot.process is not None
        code, pid = slot.process.exitcode, slot.process.pid
        slot.process.close()
        slot.process = None
        if code == STARTUP_FAILURE and slot.generation == 1:
            # The first start failed: settings or the environment are wrong, and so would every restart be.
            # (A replacement that fails to start later, say while the database restarts, is retried below.)
            log.error("worker failed to start; stopping", extra={"worker": slot.index, "pid": pid})
            self._failed = True
            self._stop.set()
            return
        now = self._clock()
        slot.failures = 0 if now - slot.started_at >= STABLE_AFTER_S else slot.failures + 1
        pause = RESTART_PAUSE_S[min(slot.failures, len(RESTART_PAUSE_S) - 1)] if slot.failures else 0.0
        serving = sum(1 for s in self.slots if s.process is not None)
        log.error(
            "worker died; restarting",
            extra={
                "worker": slot.index,
                "pid": pid,
                "exit_code": code,
                "restart_in_s": pause,
                "workers_serving": serving,
                # Why it waits: it keeps dying soon after it starts, and a pause stops a crash loop eating the node.
                "crashes_in_a_row": slot.failures,
            },
        )
        slot.restart_at = now + pause

    def step(self) -> None:
        """One round of supervision: note dead workers, start those whose pause is over.

        The pause never leaves the node without a worker: when none is alive and every dead one is still
        pausing, the one whose pause ends first starts now (a node that serves slowly beats one that does not).
        """
        for slot in self.slots:
            if slot.process is not None and slot.process.exitcode is not None:
                self._on_exit(slot)
        if self._stop.is_set():
            return
        now = self._clock()
        waiting = [s for s in self.slots if s.process is None and s.restart_at is not None]
        due = [s for s in waiting if now >= s.restart_at]  # type: ignore[operator]
        if waiting and not due and all(s.process is None for s in self.slots):
            first = min(waiting, key=lambda s: s.restart_at or 0.0)
            log.warning(
                "no worker serving; restarting one now despite its pause",
                extra={
                    "worker": first.index,
                    "skipped_pause_s": round((first.restart_at or now) - now, 1),
                    "others_waiting": [s.index for s in waiting if s is not first],
                },
            )
            due = [first]
        for slot in due:
            self._start(slot)

    def run(self) -> int:
        """Serve until SIGINT/SIGTERM; 0 after a requested stop, 1 when a worker could not start."""
        check_port_free(self.settings.host, self.settings.port)
        if self.settings.metrics_port:
            check_port_free(self.settings.metrics_host, self.settings.metrics_port)
        previous = {
            sig: signal.signal(sig, lambda *_: self._stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for slot in self.slots:
                self._start(slot)
            while not self._stop.wait(0.2):
                self.step()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 1 if self._failed else 0

    def _stop_all(self) -> None:
        running = [s.process for s in self.slots if s.process is not None and s.process.exitcode is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                log.warning("worker did not stop in time; killing it", extra={"pid": process.pid})
                process.kill()
                process.join()
