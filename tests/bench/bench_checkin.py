"""Benchmark: a clinic check-in scan with the medical visits app bound vs the same scan with no app bound, side by
side in one run, 64 terminals scanning at once, through a real server process.

    .venv/bin/python tests/bench/bench_checkin.py [seconds per round] [rounds of each] [seconds between scans]

Starts `yima dev` with the first-party apps on a fresh PostgreSQL database and Redis (the medical app released,
seeded and bound to its clinic scene), mints 200 residents (tests/bench/_harness.py), has each book today's
session of the county hospital through the gateway (so the app knows them and each scan is a real check-in:
today's booking found, checked in on the first scan, the department and how many are ahead on every scan), and
enrols 64 clinic terminals at the app's scene and 64 at a scene of the same kind and unit with no app. Then
rounds in ABBA order (bound, unbound, unbound, bound, ...): 64 keep-alive connections, one per terminal, each
scan a fresh, valid Ankang code of a resident, for the round's seconds (tests/bench/loadgen.py, two client
processes), first with each terminal scanning once every 0.5 s (the target's measure: 128 scans/s from 64
terminals), then each scanning again as soon as it has its answer (the most the server does). Reported: each
side's p50 and p99 as medians over its rounds, what the bound app adds, how many bound answers came without
the app's lines (the platform's 300 ms scan deadline marks them missing), and the CPU per answered scan (utime +
stime from /proc, as bench_db.py counts it) of the server process, its sandbox workers and the PostgreSQL
backends serving it: on a shared machine the figure that moves least with the load.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import multiprocessing as mp
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx
from yima_sdk.codes import issue_ankang_code
from yima_sdk.cron import COUNTY_TIME

from tests.bench._harness import prepare, print_table, run
from tests.bench.bench_db import backends, cpu_ms, process_tree
from tests.bench.loadgen import http_request, run_load
from tests.e2e._real import (
    RealServer,
    enrol_terminal,
    eventually,
    fresh_database,
    private_folder,
    real_server,
    server_env,
    sign_in,
)

APP = "gov.guangde.medical"
API = f"/v1/miniapps/{APP}/api"
UNIT = "institution:guangde-people"
TERMINALS = 64
RESIDENTS = 200
CODES_PER_CONNECTION = 400
"""Fresh codes per connection and round, more than one connection scans in a round: a code scanned twice at a
terminal would be answered from the replay guard, which is faster than a scan."""


def main() -> None:
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    every_s = float(sys.argv[3]) if len(sys.argv) > 3 else 0.5
    with private_folder("yima-bench-checkin-") as folder, fresh_database() as dsn:
        env = server_env(
            dsn,
            folder / "data",
            redis=True,
            YIMA_DEV_FIRST_PARTY="1",
            YIMA_PLATFORM_SCAN_DEADLINE_MS="300",  # production's deadline, not the e2e tests' patient one
            YIMA_LOG_LEVEL="WARNING",
        )
        with real_server("dev", env=env) as server:
            operator = sign_in(server, role="operator")
            port = int(server.url.rsplit(":", 1)[1])
            seeded = run(prepare(dsn, env["YIMA_MASTER_KEY"], env["YIMA_REDIS_NAMESPACE"], port,
                                 residents=RESIDENTS, terminals=0, kind="clinic"))  # fmt: skip
            book_today(server, operator, seeded["resident_tokens"])
            bound = [
                token_of(enrol_terminal(server, operator, "clinic", APP, unit=UNIT)) for _ in range(TERMINALS)
            ]
            unbound = [
                token_of(enrol_terminal(server, operator, "clinic", "clinic-without-app", unit=UNIT))
                for _ in range(TERMINALS)
            ]
            key, refs, residents = seeded["issuer_key"], seeded["refs"], seeded["residents"]

            def codes(n: int) -> list[str]:
                now = int(time.time())
                return [
                    issue_ankang_code(key.private_key, bytes.fromhex(key.kid), 341822,
                                      refs.seal(residents[i % len(residents)], 0, secrets.randbelow(2**31)),
                                      "green", now, 600)
                    for i in range(n)
                ]  # fmt: skip

            missing = mp.get_context("fork").Value("i", 0)
            reused = mp.get_context("fork").Value("i", 0)

            def load(tokens: list[str], round_s: float, every: float = 0.0) -> Any:
                pool = codes(TERMINALS * CODES_PER_CONNECTION)
                sent = [0] * TERMINALS
                watch = tokens is bound

                def next_request(index: int, previous: bytes | None) -> bytes:
                    if watch and previous is not None and b'"missing":true' in previous:
                        with missing.get_lock():
                            missing.value += 1
                    n = sent[index]
                    sent[index] += 1
                    if n == CODES_PER_CONNECTION:
                        with reused.get_lock():
                            reused.value += 1
                    payload = pool[index * CODES_PER_CONNECTION + n % CODES_PER_CONNECTION]
                    body = json.dumps({"payload": payload, "scanned_at": int(time.time() * 1000)}).encode()
                    headers = {"authorization": f"Bearer {tokens[index]}", "content-type": "application/json"}
                    return http_request(
                        "POST", "/v1/scans", host=f"127.0.0.1:{port}", body=body, headers=headers
                    )

                pids = process_tree(server.proc.pid) | run(backends(dsn))
                before = cpu_ms(pids)
                result = run_load(
                    "127.0.0.1", port, next_request, connections=TERMINALS, duration_s=round_s, every_s=every
                )
                after, answered = cpu_ms(pids), max(1, sum(result.statuses.values()))
                cpu["bound" if watch else "unbound"].append(
                    {kind: (after[kind] - before[kind]) / answered for kind in after}
                )
                return result

            cpu: dict[str, list[dict[str, float]]] = {"bound": [], "unbound": []}
            # warm-up: every resident checked in, the app's workers, its indexes and the pool busy once (a first
            # scan after the start may pass the deadline while it builds them)
            load(bound, 2)
            load(unbound, 2)
            check_lines(server.url, bound[0], codes(3))
            for mode, every in ((f"one scan every {every_s} s per terminal", every_s), ("closed loop", 0.0)):
                missing.value = 0
                cpu.update(bound=[], unbound=[])
                results: dict[str, list[Any]] = {"bound": [], "unbound": []}
                load_before = os.getloadavg()[0]
                for order in range(rounds):
                    for side in ("bound", "unbound") if order % 2 == 0 else ("unbound", "bound"):
                        results[side].append(load(bound if side == "bound" else unbound, seconds, every))
                print(f"\n{mode}:")
                report(results, cpu, seconds, missing.value, reused.value, (load_before, os.getloadavg()[0]))


def token_of(client: httpx.Client) -> str:
    return str(client.headers["authorization"]).removeprefix("Bearer ")


def book_today(server: RealServer, operator: httpx.Client, tokens: list[str]) -> None:
    """Each resident books today's morning or afternoon session of Dr Chen (capacities raised to fit them all)."""
    scheduler = sign_in(server)
    grant = {"account_id": scheduler.get("/v1/me").json()["id"], "role": "scheduler", "unit": UNIT}
    r = operator.post(f"/v1/miniapps/{APP}/staff", json=grant)
    assert r.status_code == 201, r.text
    today = dt.datetime.now(COUNTY_TIME).date().isoformat()
    for half in ("am", "pm"):
        session = f"dr-chen.{today}.{half}"
        done = eventually(
            lambda s=session: (
                scheduler.put(f"{API}/staff/sessions/{s}", json={"capacity": 500}).status_code == 200
            ),
            60,
        )
        assert done

    async def book_all() -> list[int]:
        gate = asyncio.Semaphore(8)
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:

            async def one(i: int, token: str) -> int:
                async with gate:
                    session = f"dr-chen.{today}.{'am' if i % 2 == 0 else 'pm'}"
                    r = await http.post(
                        f"{API}/sessions/{session}/book", headers={"authorization": f"Bearer {token}"}
                    )
                    return r.status_code

            return list(await asyncio.gather(*(one(i, t) for i, t in enumerate(tokens))))

    statuses = asyncio.run(book_all())
    assert statuses == [201] * len(tokens), statuses


def check_lines(url: str, token: str, payloads: list[str]) -> None:
    """A bound scan answers the app's check-in lines (the department, the number, how many are ahead)."""
    for payload in payloads:
        r = httpx.post(f"{url}/v1/scans", json={"payload": payload, "scanned_at": int(time.time() * 1000)},
                       headers={"authorization": f"Bearer {token}"}, timeout=30)  # fmt: skip
        part = r.json().get("miniapp") or {}
        assert r.status_code == 200 and part.get("lines", [""])[0] == "内科 Internal medicine", r.text


def report(
    results: dict[str, list[Any]],
    cpu: dict[str, list[dict[str, float]]],
    seconds: int,
    missing: int,
    reused: int,
    load: tuple[float, float],
) -> None:
    def med(side: str, field: str) -> float:
        return statistics.median(getattr(r, field) for r in results[side])

    rows = []
    for side in ("bound", "unbound"):
        rounds = results[side]
        rows.append((
            f"scan, {'medical app bound' if side == 'bound' else 'no app bound'}",
            f"p50 {med(side, 'p50_ms'):6.2f} ms  p99 {med(side, 'p99_ms'):6.2f} ms  "
            f"{statistics.median(r.rate for r in rounds):5.0f} scans/s  "
            f"(rounds p50 {', '.join(f'{r.p50_ms:.1f}' for r in rounds)}; "
            f"p99 {', '.join(f'{r.p99_ms:.1f}' for r in rounds)})",
        ))  # fmt: skip
    for side in ("bound", "unbound"):
        kinds = {k: statistics.median(r[k] for r in cpu[side]) for k in ("server", "sandbox", "postgres")}
        rows.append((
            f"CPU ms per scan, {'bound' if side == 'bound' else 'no app'}",
            f"{sum(kinds.values()):5.2f}: server {kinds['server']:.2f}, sandbox {kinds['sandbox']:.2f}, "
            f"postgres {kinds['postgres']:.2f} (medians of the rounds)",
        ))  # fmt: skip
    added_p50 = med("bound", "p50_ms") - med("unbound", "p50_ms")
    rows += [
        ("added by the bound app, p50", f"{added_p50:6.2f} ms (target <= 2 ms)"),
        ("bound p99", f"{med('bound', 'p99_ms'):6.2f} ms (target <= 25 ms)"),
        (
            "ratio bound/unbound p50, p99",
            f"{med('bound', 'p50_ms') / med('unbound', 'p50_ms'):.2f}x, "
            f"{med('bound', 'p99_ms') / med('unbound', 'p99_ms'):.2f}x",
        ),
        ("statuses", json.dumps({s: [r.statuses for r in results[s]] for s in results})),
        ("bound answers without the app's lines", f"{missing} (300 ms scan deadline)"),
        ("codes sent twice at a terminal", str(reused)),
        (
            "",
            f"{TERMINALS} terminals per side, {seconds} s rounds in ABBA order, medians of {len(results['bound'])}",
        ),
        ("load average (1 min) before / after", f"{load[0]:.1f} / {load[1]:.1f} on {os.cpu_count()} cores"),
    ]
    print_table(rows)


if __name__ == "__main__":
    main()
