"""Platform benchmark, side by side in one run over the in-process app (httpx ASGI transport, real PostgreSQL,
Redis and sandbox workers):

1. Gateway call to a trivial sandboxed handler vs the core's own trivial authenticated route (GET /v1/me),
   concurrent callers, throughput ratio (target >= 0.5x).
2. A scan event with a bound app (display lines from the sandbox) vs a scan of an unbound scene: the p50 the
   bound app adds (target <= 2 ms).

Run: .venv/bin/python tests/bench/bench_gateway.py
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sandbox import SandboxSettings
from server.app import create_app
from server.platform.config import PlatformSettings
from server.platform.plugin import PlatformPlugin
from server.security.master_key import new_master_key_text
from server.settings import load_settings
from server.terminals.events import ScanEvent
from tests.conftest import ADMIN_DSN, REDIS_URL, login, serve
from tests.platform.conftest import make_team, new_app_id, write_probe

ROUNDS, PER_ROUND, CALLERS = 5, 400, 8
SCANS = 1000


async def throughput(client, path: str, headers: dict[str, str]) -> float:  # type: ignore[no-untyped-def]
    async def caller(n: int) -> None:
        for _ in range(n):
            r = await client.get(path, headers=headers)
            assert r.status_code == 200, r.text

    started = time.perf_counter()
    await asyncio.gather(*(caller(PER_ROUND // CALLERS) for _ in range(CALLERS)))
    return PER_ROUND / (time.perf_counter() - started)


async def main() -> None:
    name = f"yima_bench_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    data = Path(tempfile.mkdtemp(prefix="yima-bench-"))
    os.chmod(data, 0o755)
    try:
        settings = load_settings(
            {},
            mode="test",
            database_url=ADMIN_DSN.rpartition("/")[0] + "/" + name,
            redis_url=REDIS_URL,
            redis_namespace=f"yimabench-{secrets.token_hex(3)}:",
            master_key=new_master_key_text(),
            data_dir=str(data),
            db_pool_min=2,
            db_pool_max=10,
        )
        app = create_app(settings)
        app.plugins.get(PlatformPlugin).config = PlatformSettings(
            sandbox=SandboxSettings(max_workers=2, queue_limit=256), apps_dir=data / "apps"
        )
        async with serve(app) as client:
            team = await make_team(client)
            folder = write_probe(data / "src", new_app_id("bench"))
            (folder / "miniapp.toml").write_text(
                (folder / "miniapp.toml").read_text().replace("workers = 1", "workers = 2")
            )
            app_id, _ = await team.ship(folder)
            await team.admin(
                "PUT",
                f"/{app_id}/quotas",
                json={"calls_per_minute": 10_000_000, "resident_calls_per_minute": 100_000},
            )
            resident = await login(client)
            gateway_path = f"/v1/miniapps/{app_id}/api/whoami"
            for path in (gateway_path, "/v1/me"):  # warm up
                await throughput(client, path, resident.headers)
            core, gw = [], []
            for _ in range(ROUNDS):  # interleaved rounds: both see the same machine state
                core.append(await throughput(client, "/v1/me", resident.headers))
                gw.append(await throughput(client, gateway_path, resident.headers))
            core_m, gw_m = statistics.median(core), statistics.median(gw)
            print(
                f"core GET /v1/me:             {core_m:8.0f} req/s (median of {ROUNDS} rounds, {CALLERS} callers)"
            )
            print(f"gateway -> sandbox /whoami:  {gw_m:8.0f} req/s")
            print(f"ratio gateway/core:          {gw_m / core_m:8.2f}x (target >= 0.5x)")

            sink = app.state.scan_events

            async def scan_p50(kind: str, scene_name: str) -> float:
                timings = []
                for _ in range(SCANS):
                    event = ScanEvent(
                        str(uuid.uuid4()),
                        "t-1",
                        kind,
                        scene_name,
                        "accept",
                        None,
                        "ankang_code",
                        resident.account_id,
                        dt.datetime.now(dt.UTC),
                        "online",
                    )
                    started = time.perf_counter()
                    await sink.scan_recorded(event)
                    timings.append(time.perf_counter() - started)
                return statistics.median(timings) * 1000

            trivial, writing = f"bench-{uuid.uuid4().hex[:6]}", f"bench-{uuid.uuid4().hex[:6]}"
            await team.admin("PUT", f"/scenes/counter/{trivial}", json={"app_id": app_id})
            await team.admin("PUT", f"/scenes/clinic/{writing}", json={"app_id": app_id})
            await scan_p50("counter", trivial)  # warm up
            await scan_p50("clinic", writing)
            bound = await scan_p50("counter", trivial)
            bound_writing = await scan_p50("clinic", writing)
            unbound = await scan_p50("counter", "no-app-here")
            print(f"scan event, bound app:       {bound:8.3f} ms p50 (handler returns 1 line)")
            print(
                f"scan event, bound app:       {bound_writing:8.3f} ms p50 (handler writes one document, returns 2 lines)"
            )
            print(f"scan event, no bound app:    {unbound:8.3f} ms p50")
            print(f"added by the bound app:      {bound - unbound:8.3f} ms p50 (target <= 2 ms)")
            print(f"  with a storage write:      {bound_writing - unbound:8.3f} ms p50")
    finally:
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
