"""Server CPU per sandboxed gateway call, two versions of the code side by side: two real `yima serve --workers 2`
(uvloop; PostgreSQL, Redis, sandbox workers, 8 app workers), one per checkout, each with the probe app released
and its quotas raised, run at the same time; wrk at 16 connections on the trivial handler `/whoami` and the 3-write
transaction `/db/tx3`, rounds interleaved A B B A, and for every round the CPU per answered request (utime + stime
from /proc) of the server processes (and of that, in the kernel), their sandbox workers and the PostgreSQL
backends. On a machine loaded by others, latency says little; CPU per request, side by side, says what a change
costs. Medians per figure.

Run (two checkouts, e.g. `git worktree add --detach /tmp/old <rev>`):
    .venv/bin/python tests/bench/bench_gateway_cpu.py /tmp/old .        # ROUNDS=3 SECS=4 by default

A checkout's server code comes first on PYTHONPATH, but a sandbox worker starts as `python -I` (no PYTHONPATH):
it imports the sandbox and the SDK its venv installed. So a checkout that has its own venv (`make
.venv/.installed` there) runs on it, workers included; without one, both sides' workers run this venv's code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench._harness import lua_round_robin, wrk
from tests.bench.bench_db import TICK_MS, backends, process_tree
from tests.e2e._real import (
    YIMA,
    RealServer,
    fresh_database,
    private_folder,
    real_server,
    server_env,
    ship_and_use,
    sign_in,
)
from tests.platform.conftest import new_app_id, write_probe

ROUNDS = int(os.environ.get("ROUNDS", "3"))
SECONDS = int(os.environ.get("SECS", "4"))
FIGURES = ("server", "server_sys", "sandbox", "postgres")
RESIDENTS = 8


def cpu_ms(pids: set[int]) -> dict[str, float]:
    """CPU used so far (ms) by the server processes (and of that, in the kernel), sandbox workers, and `pids`."""
    out = dict.fromkeys(FIGURES, 0.0)
    for pid in pids:
        try:
            raw = Path(f"/proc/{pid}/stat").read_bytes()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        fields = raw[raw.rindex(b")") + 2 :].split()
        kind = "sandbox" if b"sandbox.worker" in cmd else "postgres" if b"python" not in cmd else "server"
        out[kind] += (int(fields[11]) + int(fields[12])) * TICK_MS
        if kind == "server":
            out["server_sys"] += int(fields[12]) * TICK_MS
    return out


@contextlib.contextmanager
def started(checkout: Path) -> Iterator[tuple[RealServer, str, dict[str, str]]]:
    """A server running `checkout`'s code (first on PYTHONPATH), the probe released; its dsn and wrk scripts."""
    with private_folder("yima-bench-") as folder, fresh_database() as dsn:
        env = server_env(dsn, folder / "data", redis=True, YIMA_LOG_LEVEL="WARNING", YIMA_DB_POOL_MAX="20")
        env["PYTHONPATH"] = f"{checkout}:{checkout / 'sdk'}"
        own = checkout / ".venv" / "bin" / "yima"
        yima = str(own) if own.exists() else YIMA
        with real_server("serve", "--workers", "2", "--allow-development", env=env, yima=yima) as server:
            developer, operator = sign_in(server, role="developer"), sign_in(server, role="operator")
            probe = write_probe(folder / "src", new_app_id("benchcpu"))
            manifest = probe / "miniapp.toml"
            manifest.write_text(manifest.read_text().replace("workers = 1", "workers = 8"))
            app_id, resident = ship_and_use(server, probe, developer, operator)
            quotas = {
                "calls_per_minute": 10_000_000,
                "resident_calls_per_minute": 100_000,
                "storage_max_keys": 100_000_000,
                "storage_max_bytes": 1 << 40,
            }
            r = operator.put(f"/v1/admin/miniapps/{app_id}/quotas", json=quotas)
            assert r.status_code == 200, r.text
            # Calls spread over several residents: one resident's quota (at most 100,000 calls a minute) is
            # passed within a round once a side serves ~1,700 calls/s, and a 429 is not what this measures.
            residents = [resident, *(sign_in(server) for _ in range(RESIDENTS - 1))]
            headers = [
                {"authorization": str(r.headers["authorization"]), "content-type": "application/json"}
                for r in residents
            ]
            api = f"/v1/miniapps/{app_id}/api"
            scripts = {
                "whoami": lua_round_robin([("GET", f"{api}/whoami", h, "") for h in headers]),
                "tx3": lua_round_robin(
                    [("POST", f"{api}/db/tx3?n={n}", headers[n % RESIDENTS], "") for n in range(50_000)]
                ),
            }
            yield server, dsn, scripts


def measure(server: RealServer, dsn: str, script: str) -> dict[str, float]:
    pids = process_tree(server.proc.pid) | asyncio.run(backends(dsn))
    before = cpu_ms(pids)
    run = wrk(server.url, script, connections=16, seconds=SECONDS)
    after = cpu_ms(pids)
    found = re.search(r"(\d+) requests in", run["raw"])
    answered = int(found.group(1)) if found else 0
    assert answered and not run["non_2xx"], run["raw"]
    return {"rps": run["rps"], **{k: (after[k] - before[k]) / answered for k in FIGURES}}


def main() -> None:
    old, new = (Path(p).resolve() for p in sys.argv[1:3])
    with started(old) as a, started(new) as b:
        servers = {"old": a, "new": b}
        for server, _, scripts in servers.values():  # warm both: pools, caches, app workers
            for script in scripts.values():
                wrk(server.url, script, connections=16, seconds=2)
        runs: dict[tuple[str, str], list[dict[str, float]]] = {}
        for figure in ("whoami", "tx3"):
            for side in ("old", "new", "new", "old") * ROUNDS:
                server, dsn, scripts = servers[side]
                runs.setdefault((figure, side), []).append(measure(server, dsn, scripts[figure]))
        load = os.getloadavg()
    print(f"{ROUNDS * 2} rounds of {SECONDS} s per figure and side, ABBA, 16 connections; load {load[0]:.1f}")
    for (figure, side), rows in runs.items():
        medians: dict[str, Any] = {
            k: round(statistics.median(r[k] for r in rows), 3) for k in ("rps", *FIGURES)
        }
        print(f"{figure:7} {side:4} CPU ms/req {json.dumps(medians)}")


if __name__ == "__main__":
    main()
