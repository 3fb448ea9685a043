"""Starving the core (issue 16, point 3): does one app's flood of capability calls slow the core's own routes?

Against the real `yima serve --workers 2` process (uvicorn's default loop, PostgreSQL, Redis, sandbox workers),
an app published, approved and released the production way (tests/e2e/_real.py) answers `/flood` by sending 64
storage calls at once from each of its 8 workers. Side by side in one run, interleaved rounds:

- `GET /v1/me` alone (wrk, 8 connections), and
- `GET /v1/me` while 32 more connections hammer the app's `/flood`.

The attack this answers took `GET /v1/me` from p99 9.6 ms to 424 ms: capability calls were unbounded in flight
and shared the core's database pool. They are now capped per call and per app version, and capability
providers share a semaphore of a third of the pool (docs/security.md). Reported: medians of the rounds' p50 and
p99 with and without the flood, their ratio, and how the flood itself was answered.

Run: .venv/bin/python tests/bench/bench_flood.py
"""

from __future__ import annotations

import statistics
import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench._harness import lua_round_robin, print_table, wrk
from tests.e2e._real import (
    fresh_database,
    private_folder,
    real_server,
    release_app,
    server_env,
    sign_in,
    verified_resident,
)
from tests.platform.conftest import new_app_id

ROUNDS, SECONDS = 3, 5
CORE_CONNECTIONS, FLOOD_CONNECTIONS = 8, 32

FLOOD_MANIFEST = """
id = "{app_id}"
name = "Flood"
version = "1.0.0"
entry = "app:app"
capabilities = ["storage"]

[limits]
workers = 8
timeout_ms = 2000
"""

FLOOD_SOURCE = """
import asyncio

from yima_sdk import App, Context, Request

app = App()


@app.get("/flood")
async def flood(ctx: Context, request: Request) -> dict:
    answers = await asyncio.gather(*(ctx.storage.get(f"k{i}") for i in range(64)), return_exceptions=True)
    return {"calls": len(answers), "refused": sum(isinstance(a, Exception) for a in answers)}
"""


def main() -> None:
    with private_folder("yima-bench-") as folder, fresh_database() as dsn:
        env = server_env(dsn, folder / "data", redis=True, YIMA_LOG_LEVEL="WARNING")
        with real_server("serve", "--workers", "2", "--allow-development", env=env) as server:
            developer, operator = sign_in(server, role="developer"), sign_in(server, role="operator")
            source = folder / "src" / "flood"
            source.mkdir(parents=True)
            app_id = new_app_id("flood")
            (source / "miniapp.toml").write_text(FLOOD_MANIFEST.replace("{app_id}", app_id))
            (source / "app.py").write_text(FLOOD_SOURCE)
            release_app(server, source, developer, operator)
            r = operator.put(
                f"/v1/admin/miniapps/{app_id}/quotas",
                json={"calls_per_minute": 10_000_000, "resident_calls_per_minute": 100_000},
            )
            assert r.status_code == 200, r.text
            resident = verified_resident(server)
            headers = {"authorization": str(resident.headers["authorization"])}
            first = resident.get(f"/v1/miniapps/{app_id}/api/flood")
            assert first.status_code == 200 and first.json()["calls"] == 64, first.text

            core_route = lua_round_robin([("GET", "/v1/me", headers, "")])
            flood_route = lua_round_robin([("GET", f"/v1/miniapps/{app_id}/api/flood", headers, "")])
            wrk(server.url, core_route, connections=CORE_CONNECTIONS, seconds=2)  # warm up
            alone: list[dict[str, Any]] = []
            flooded: list[dict[str, Any]] = []
            floods: list[dict[str, Any]] = []
            for _ in range(ROUNDS):
                alone.append(wrk(server.url, core_route, connections=CORE_CONNECTIONS, seconds=SECONDS))

                def attack() -> None:
                    floods.append(
                        wrk(server.url, flood_route, connections=FLOOD_CONNECTIONS, seconds=SECONDS + 2)
                    )

                attacker = threading.Thread(target=attack)
                attacker.start()
                flooded.append(wrk(server.url, core_route, connections=CORE_CONNECTIONS, seconds=SECONDS))
                attacker.join()
            assert all(x["non_2xx"] == 0 for x in alone + flooded), "the core answered non-2xx"

            def median(runs: list[dict[str, Any]], key: str) -> float:
                return float(statistics.median(x[key] for x in runs))

            print_table(
                [
                    (
                        "server",
                        "yima serve --workers 2 (uvloop), PostgreSQL, Redis; app: 8 workers x 64 calls",
                    ),
                    (
                        "core GET /v1/me alone",
                        f"{median(alone, 'rps'):8.0f} req/s  p50 {median(alone, 'p50'):.2f} ms  "
                        f"p99 {median(alone, 'p99'):.2f} ms",
                    ),
                    (
                        "core GET /v1/me, app flooding",
                        f"{median(flooded, 'rps'):8.0f} req/s  p50 {median(flooded, 'p50'):.2f} ms  "
                        f"p99 {median(flooded, 'p99'):.2f} ms",
                    ),
                    ("p99 ratio flooded/alone", f"{median(flooded, 'p99') / median(alone, 'p99'):8.2f}x"),
                    (
                        "the flood itself",
                        f"{median(floods, 'rps'):8.0f} req/s, {sum(x['non_2xx'] for x in floods)} non-2xx "
                        f"(busy/limited) of {sum(x['rps'] * (SECONDS + 2) for x in floods):.0f}",
                    ),
                    (
                        "",
                        f"median of {ROUNDS} interleaved {SECONDS} s rounds; core {CORE_CONNECTIONS} connections, "
                        f"flood {FLOOD_CONNECTIONS}",
                    ),
                ]
            )


if __name__ == "__main__":
    main()
