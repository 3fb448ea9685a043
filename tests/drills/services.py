"""Real services a drill can break: a private `redis-server` on a free loopback port, and `yima serve`.

Shared by every fault drill (Redis outages, replay claims across a Redis crash, keys reaching idle workers). Each
helper is bounded in time (every wait has a deadline) and binds loopback only; whatever a helper starts, its
context manager stops, so a failing drill leaves no process behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx

from tests.conftest import free_port

T = TypeVar("T")

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
# Loopback only, nothing written to disk: a restart is a fresh, empty Redis (as after a crash without persistence).
_REDIS_OPTIONS = ("--bind", "127.0.0.1", "--protected-mode", "yes", "--save", "", "--appendonly", "no")
YIMA = str(Path(sys.executable).parent / "yima")


def wait_for(predicate: Callable[[], T | None], timeout_s: float = 30.0, what: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy; fail the drill after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout_s} s")
        time.sleep(0.05)


class PrivateRedis:
    """A `redis-server` of the drill's own: no persistence, loopback, a free port that survives restarts."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 15.0) -> None:
        """Start (or start again, on the same port) and return once it answers PING."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [REDIS_SERVER, *_REDIS_OPTIONS, "--port", str(self.port), "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self.answers, timeout_s, f"redis-server on port {self.port}")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """`kill -9`: no shutdown, no save; clients see their connections drop."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextlib.contextmanager
def private_redis(workdir: Path) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(workdir)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


def yima_env(**settings: str) -> dict[str, str]:
    """This process's environment without any YIMA_* variable, plus `settings` as YIMA_<NAME>."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIMA_")}
    env.update({"YIMA_" + name.upper(): value for name, value in settings.items()})
    return env


def drill_env(*, database_url: str, master_key: str, redis_url: str, data_dir: Path) -> dict[str, str]:
    """The environment of a drill's `yima serve` and CLI runs: the test database, a private Redis namespace,
    development mode (the SMS outbox lets the drill log in), and an OTP limit per address that the drill's many
    logins from 127.0.0.1 never reach."""
    return yima_env(
        database_url=database_url,
        redis_url=redis_url,
        redis_namespace=f"drill-{secrets.token_hex(4)}:",
        mode="development",
        master_key=master_key,
        data_dir=str(data_dir),
        otp_per_address_per_hour="1000",
    )


class YimaServer:
    """`yima serve` as operations run it: a real process (tree) on a free port; output kept for the drill."""

    def __init__(self, env: dict[str, str], *, workers: int = 1, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [
                YIMA,
                "serve",
                "--allow-development",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"yima serve exited early:\n{self.output()}")
            try:
                return httpx.get(self.url + "/health/live", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, timeout_s, "yima serve ready")

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGINT (Ctrl-C), as an operator stops it; SIGKILL if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        return self.process.returncode


@contextlib.contextmanager
def yima_serve(env: dict[str, str], *, log_path: Path, workers: int = 1) -> Iterator[YimaServer]:
    server = YimaServer(env, workers=workers, log_path=log_path)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
