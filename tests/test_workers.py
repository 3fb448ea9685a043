"""`yima serve --workers 2` as a real process tree: connections spread over both workers, a dead worker is
replaced, a taken port is refused with a message, Ctrl-C stops everything."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REDIS_URL, free_port
from tests.test_cli import YIMA, _env, _wait_ready


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(p) for p in (task / "children").read_text().split()]
    return out


def _workers(pid: int) -> list[int]:
    """The supervisor's worker processes (multiprocessing's spawn also starts a resource tracker)."""
    return [c for c in _children(pid) if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _listening_inodes(port: int) -> set[int]:
    out = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
            out.add(int(fields[9]))
    return out


def _serving_workers(pid: int, port: int) -> list[int] | None:
    """Both workers, once each listens on the port (a worker still starting would get no connections)."""
    workers = _workers(pid)
    listening = _listening_inodes(port)
    if len(workers) == 2 and all(_socket_inodes(w) & listening for w in workers):
        return workers
    return None


def _server_side_inodes(port: int) -> dict[int, int]:
    """inode -> client port of every established connection to `port` (server side), from /proc/net/tcp."""
    out = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
        if state == "01" and int(local.split(":")[1], 16) == port:
            out[inode] = int(remote.split(":")[1], 16)
    return out


def _serve(port: int, database_url: str, master_key: str, data_dir: Path) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of `yima serve --workers 2` on `port`."""
    return [YIMA, "serve", "--allow-development", "--workers", "2", "--port", str(port)], _env(
        YIMA_DATABASE_URL=database_url,
        YIMA_REDIS_URL=REDIS_URL,
        YIMA_MODE="development",
        YIMA_MASTER_KEY=master_key,
        YIMA_DATA_DIR=str(data_dir),
    )


@pytest.fixture
def two_workers(database_url, master_key, tmp_path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    args, env = _serve(port, database_url, master_key, tmp_path)
    proc = subprocess.Popen(
        args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}", proc)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)


def _wait_for(predicate, timeout_s: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_two_workers_share_redis_and_stop_cleanly_on_ctrl_c(two_workers):
    proc, port = two_workers
    health = httpx.get(f"http://127.0.0.1:{port}/health").json()
    assert health["checks"] == {"database": "ok", "redis": "ok"}
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 0


def test_a_burst_of_connections_is_served_by_both_workers(two_workers):
    """40 keep-alive connections opened at once (terminals coming back online) land on both workers, not one."""
    proc, port = two_workers
    workers = _wait_for(lambda: _serving_workers(proc.pid, port))
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
    try:
        for c in conns:
            c.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        for c in conns:
            assert c.recv(4096).startswith(b"HTTP/1.1 200")
        established = _server_side_inodes(port)
        held = {w: len(_socket_inodes(w) & established.keys()) for w in workers}
        assert sum(held.values()) == 40
        # Each connection lands on a worker by its address hash: 40 fair coin flips put fewer than 5 on one
        # side about once in ten million runs. A shared accept socket put all 40 on the worker that woke first.
        assert min(held.values()) >= 5, held
    finally:
        for c in conns:
            c.close()


def test_a_killed_worker_is_replaced_and_the_server_keeps_answering(two_workers):
    proc, port = two_workers
    workers = _wait_for(lambda: len(_workers(proc.pid)) == 2 and _workers(proc.pid))
    os.kill(workers[0], signal.SIGKILL)
    replaced = _wait_for(
        lambda: (now := _workers(proc.pid)) and len(now) == 2 and workers[0] not in now and now
    )
    assert workers[1] in replaced
    _wait_ready(f"http://127.0.0.1:{port}", proc)
    for _ in range(20):  # fresh connections, spread over both workers again
        assert httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=5).status_code == 200
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "worker died; restarting" in out
    assert not [w for w in replaced if Path(f"/proc/{w}").exists()], "workers left behind"


def test_a_taken_port_is_refused_with_a_message(database_url, master_key, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args, env = _serve(port, database_url, master_key, tmp_path)
        r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr


def test_a_worker_that_cannot_start_stops_the_server(master_key, tmp_path):
    """Start-up fails the same way in every worker (no database here): exit 1 at once, not a restart loop."""
    args, env = _serve(free_port(), "postgresql://postgres@127.0.0.1:1/nothing", master_key, tmp_path)
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "worker failed to start; stopping" in r.stderr
