"""Platform benchmark against the real `yima serve --workers 2` process (the CLI, uvicorn's default loop:
uvloop; PostgreSQL, Redis, sandbox workers), side by side in one run, wrk as the load:

1. Gateway call to a trivial sandboxed handler vs the core's own trivial authenticated route (GET /v1/me),
   interleaved rounds, throughput ratio (target >= 0.5x).
2. POST /v1/scans of a fresh Ankang code at a counter scene bound to the app (its handler returns one display
   line) vs at a counter scene with no app, one terminal each, alternating: the p50 the bound app adds
   (target <= 2 ms).

The app goes the production way first: published with the SDK, approved and released by an operator, bound to
its scene (tests/e2e/_real.py). Run: .venv/bin/python tests/bench/bench_gateway.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench._harness import lua_round_robin, prepare, print_table, run, wrk
from tests.e2e._real import (
    enrol_terminal,
    fresh_database,
    private_folder,
    real_server,
    server_env,
    ship_and_use,
    sign_in,
)
from tests.platform.conftest import new_app_id, write_probe

ROUNDS, SECONDS, CONNECTIONS = 3, 5, 16
SCANS = 300


def main() -> None:
    with private_folder("yima-bench-") as folder, fresh_database() as dsn:
        env = server_env(dsn, folder / "data", redis=True, YIMA_LOG_LEVEL="WARNING", YIMA_DB_POOL_MAX="20")
        with real_server("serve", "--workers", "2", "--allow-development", env=env) as server:
            developer, operator = sign_in(server, role="developer"), sign_in(server, role="operator")
            probe = write_probe(folder / "src", new_app_id("bench"))
            manifest = probe / "miniapp.toml"
            manifest.write_text(manifest.read_text().replace("workers = 1", "workers = 2"))
            app_id, resident = ship_and_use(server, probe, developer, operator)
            r = operator.put(
                f"/v1/admin/miniapps/{app_id}/quotas",
                json={"calls_per_minute": 10_000_000, "resident_calls_per_minute": 100_000},
            )
            assert r.status_code == 200, r.text

            headers = {"authorization": str(resident.headers["authorization"])}
            gateway = lua_round_robin([("GET", f"/v1/miniapps/{app_id}/api/whoami", headers, "")])
            core_route = lua_round_robin([("GET", "/v1/me", headers, "")])
            for script in (gateway, core_route):  # warm up both workers' pools and caches
                wrk(server.url, script, connections=CONNECTIONS, seconds=2)
            core, gw = [], []
            for _ in range(ROUNDS):  # interleaved rounds: both see the same machine state
                core.append(wrk(server.url, core_route, connections=CONNECTIONS, seconds=SECONDS))
                gw.append(wrk(server.url, gateway, connections=CONNECTIONS, seconds=SECONDS))
            assert all(x["non_2xx"] == 0 for x in core + gw), "non-2xx answers under load"

            def median(runs: list[dict[str, float]], key: str) -> float:
                return statistics.median(x[key] for x in runs)

            bound_ms, unbound_ms = scan_latencies(server, operator, app_id, env)
            print_table(
                [
                    ("server", "yima serve --workers 2 (uvicorn default loop: uvloop), PostgreSQL, Redis"),
                    (
                        "core GET /v1/me",
                        f"{median(core, 'rps'):8.0f} req/s  p50 {median(core, 'p50'):.2f} ms  "
                        f"p99 {median(core, 'p99'):.2f} ms",
                    ),
                    (
                        "gateway -> sandbox /whoami",
                        f"{median(gw, 'rps'):8.0f} req/s  p50 {median(gw, 'p50'):.2f} ms  "
                        f"p99 {median(gw, 'p99'):.2f} ms",
                    ),
                    (
                        "ratio gateway/core",
                        f"{median(gw, 'rps') / median(core, 'rps'):8.2f}x (target >= 0.5x)",
                    ),
                    ("", f"median of {ROUNDS} interleaved {SECONDS} s wrk rounds, {CONNECTIONS} connections"),
                    (
                        "scan, bound app",
                        f"{bound_ms:8.3f} ms p50 (counter handler returns 1 line)",
                    ),
                    ("scan, no bound app", f"{unbound_ms:8.3f} ms p50"),
                    ("added by the bound app", f"{bound_ms - unbound_ms:8.3f} ms p50 (target <= 2 ms)"),
                    ("", f"{SCANS} scans each, alternating, one terminal each, sequential"),
                ]
            )


def scan_latencies(server, operator, app_id: str, env: dict[str, str]) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """p50 of POST /v1/scans at a bound and at an unbound counter scene, each scan a fresh resident's code."""
    port = int(server.url.rsplit(":", 1)[1])
    seeded = run(
        prepare(
            env["YIMA_DATABASE_URL"],
            env["YIMA_MASTER_KEY"],
            env["YIMA_REDIS_NAMESPACE"],
            port,
            residents=2 * SCANS + 20,
            terminals=0,
            kind="counter",
        )
    )
    bound_scene, unbound_scene = f"{app_id}-bench", f"{app_id}-none"
    r = operator.put(f"/v1/admin/miniapps/scenes/counter/{bound_scene}", json={"app_id": app_id})
    assert r.status_code == 200, r.text
    bound = enrol_terminal(server, operator, "counter", bound_scene)
    unbound = enrol_terminal(server, operator, "counter", unbound_scene)
    payloads = []
    for token in seeded["resident_tokens"]:
        r = bound.get("/v1/me/codes/ankang", headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        payloads.append(r.json()["payload"])

    def scan(terminal, payload: str) -> float:  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        r = terminal.post("/v1/scans", json={"payload": payload, "scanned_at": int(time.time() * 1000)})
        elapsed = time.perf_counter() - started
        assert r.status_code == 200 and r.json()["result"] == "accept", r.text
        if terminal is bound:  # the app's lines came back, not a missing part
            assert r.json()["miniapp"]["missing"] is False, r.text
        return elapsed * 1000

    for payload in payloads[:10]:  # warm up
        scan(bound, payload)
    for payload in payloads[10:20]:
        scan(unbound, payload)
    timings: dict[str, list[float]] = {"bound": [], "unbound": []}
    for i, payload in enumerate(payloads[20:]):
        which = "bound" if i % 2 == 0 else "unbound"
        timings[which].append(scan(bound if which == "bound" else unbound, payload))
    return statistics.median(timings["bound"]), statistics.median(timings["unbound"])


if __name__ == "__main__":
    main()
