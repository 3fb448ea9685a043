"""Start a real `yima serve` for a benchmark against the local PostgreSQL and Redis, in a fresh database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

ADMIN_DSN = os.environ.get("YIMA_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("YIMA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class RunningServer:
    host: str
    port: int
    database_url: str
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _create_db(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()


async def _drop_db(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


@contextlib.contextmanager
def yima_serve(workers: int = 2, **extra_env: str) -> Iterator[RunningServer]:
    name = f"yima_bench_{secrets.token_hex(3)}"
    asyncio.run(_create_db(name))
    database_url = ADMIN_DSN.rpartition("/")[0] + "/" + name
    port = _free_port()
    data_dir = tempfile.mkdtemp(prefix="yima-bench-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIMA_")}
    env.update(
        YIMA_MODE="development",
        YIMA_DATABASE_URL=database_url,
        YIMA_REDIS_URL=REDIS_URL,
        YIMA_REDIS_NAMESPACE=f"bench-{secrets.token_hex(3)}:",
        YIMA_DATA_DIR=data_dir,
        YIMA_LOG_LEVEL="WARNING",
        YIMA_DB_POOL_MAX="20",
        YIMA_OTP_PER_PHONE_PER_HOUR="1000000",
        YIMA_OTP_PER_ADDRESS_PER_HOUR="1000000",
        **extra_env,
    )
    # Run the migrations and create the master key first, so the workers start on a ready database.
    subprocess.run(
        [str(Path(sys.executable).parent / "yima"), "migrate"], env=env, check=True, capture_output=True
    )
    from server.security.master_key import new_master_key_text

    env.setdefault("YIMA_MASTER_KEY", new_master_key_text())
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "yima"), "serve", "--workers", str(workers), "--port", str(port)],
        env=env,
        # Not a pipe: nothing reads it, and a full pipe would block the server on its next log line.
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError("yima serve did not become ready")
        yield RunningServer("127.0.0.1", port, database_url, env)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        asyncio.run(_drop_db(name))
