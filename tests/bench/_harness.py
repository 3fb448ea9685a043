"""Shared by the benchmarks: a fresh database, `yima serve --workers 2` as a real server, wrk as the load."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

ADMIN_DSN = os.environ.get("YIMA_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("YIMA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def create_database() -> tuple[str, str]:
    name = f"yima_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return name, ADMIN_DSN.rpartition("/")[0] + "/" + name


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def server_env(database_url: str, master_key: str, port: int, namespace: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("YIMA_")},
        "YIMA_MODE": "test",
        "YIMA_DATABASE_URL": database_url,
        "YIMA_REDIS_URL": REDIS_URL,
        "YIMA_REDIS_NAMESPACE": namespace,
        "YIMA_MASTER_KEY": master_key,
        "YIMA_PORT": str(port),
        "YIMA_LOG_LEVEL": "WARNING",
        "YIMA_DB_POOL_MAX": "20",
    }


@contextlib.contextmanager
def running_server(env: dict[str, str], workers: int = 2) -> Iterator[str]:
    port = int(env["YIMA_PORT"])
    # stderr to a file, not a pipe: nothing reads a pipe while the server runs, and a full one would block it.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/yima"), "serve", "--allow-development", "--workers", str(workers)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/v1/trust-list", timeout=1):
                    break
            except OSError as exc:
                if proc.poll() is not None or time.time() > deadline:
                    log.seek(0)
                    raise RuntimeError("server did not start: " + log.read().decode()[-2000:]) from exc
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def wrk(url: str, lua: str, *, connections: int, seconds: int, threads: int = 1) -> dict[str, Any]:
    """Run wrk with a Lua script; returns requests/s and latency percentiles (ms)."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed; on Debian: apt-get install wrk (docs/benchmarks.md)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
        script = f.name
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            script,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script)

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": ms("50"),
        "p99": ms("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "raw": out,
    }


def lua_round_robin(requests: list[tuple[str, str, dict[str, str], str]]) -> str:
    """A wrk script cycling through prepared (method, path, headers, body) requests.

    The requests go to a data file the script reads at start-up, one per line: a script that held them as
    literals broke past ~32k of them (Lua's constant limit), too few for a run at several thousand per second
    that must send every code once. Fields are split by tabs, headers by \\x1f; none may contain those or a
    newline.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".reqs", delete=False) as f:
        atexit.register(os.unlink, f.name)
        for method, path, headers, body in requests:
            fields = [method, path, "\x1f".join(f"{k}: {v}" for k, v in headers.items()), body]
            assert not any(c in x for x in fields for c in "\t\n"), (
                "request fields may not hold tabs or newlines"
            )
            f.write("\t".join(fields) + "\n")
    return "\n".join(
        [
            "local reqs = {}",
            f'for line in io.lines("{f.name}") do',
            '  local method, path, hdrs, body = line:match("^([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)\\t(.*)$")',
            "  local headers = {}",
            '  for pair in hdrs:gmatch("[^\\31]+") do',
            '    local k, v = pair:match("^(.-): (.*)$")',
            "    headers[k] = v",
            "  end",
            "  table.insert(reqs, wrk.format(method, path, headers, body))",
            "end",
            "local i = 0",
            "request = function()",
            "  i = i + 1",
            "  if i > #reqs then i = 1 end",
            "  return reqs[i]",
            "end",
            "init = function(args) i = math.random(#reqs) end",
        ]
    )


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    sys.stdout.flush()


async def prepare(
    database_url: str,
    master_key: str,
    namespace: str,
    port: int,
    *,
    residents: int,
    terminals: int,
    kind: str,
) -> dict[str, Any]:
    """Seed residents and terminals through the app's own services; mint their access tokens."""
    import uuid

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from server.app import create_app
    from server.identity.id_number import check_digit
    from server.settings import load_settings

    settings = load_settings(
        {},
        mode="test",
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_namespace=namespace,
        master_key=master_key,
        port=port,  # the token audience is the server's URL
    )
    app = create_app(settings)
    out: dict[str, Any] = {"residents": [], "resident_tokens": [], "terminal_tokens": []}
    async with app.lifespan():
        core, identity, registry = app.state.core, app.state.identity, app.state.terminals.registry
        async with core.db.transaction() as conn:
            for i in range(residents):
                account_id = await identity.account_id_for_phone(conn, f"139{i:08d}", create=True)
                first17 = f"3418221980{1 + i // 28 % 12:02d}{1 + i % 28:02d}{i % 1000:03d}"
                await identity.set_identity(conn, account_id, "测试", first17 + check_digit(first17))
                out["residents"].append(account_id)
            for _ in range(terminals):
                key = Ed25519PrivateKey.generate()
                import base64

                pub = base64.urlsafe_b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
                info = await registry.register(
                    conn,
                    actor="bench",
                    name="bench",
                    kind=kind,
                    scene="bench",
                    public_key=pub.rstrip(b"=").decode(),
                )
                token, _ = await core.tokens.issue(
                    subject=info.id, kind="terminal", roles=[], session_id=f"terminal:{info.id}:1"
                )
                out["terminal_tokens"].append(token)
        for account_id in out["residents"]:
            token, _ = await core.tokens.issue(
                subject=str(account_id), kind="account", roles=["resident"], session_id=str(uuid.uuid4())
            )
            out["resident_tokens"].append(token)
        out["issuer_key"] = await core.keys.active("issuer")
        out["refs"] = app.state.credentials.ankang.refs
    return out
