"""`ctx.db` benchmark against the real `yima serve --workers 2` process (uvloop; PostgreSQL, Redis, sandbox
workers), wrk as the load, side by side in one run:

1. `db.find` on an indexed field with 1,000,000 documents in the app's collection, through a sandboxed handler
   (the probe's /raw/db/find: a typed `ctx.db.find` whose page goes back as JSON): equality on `user_id`
   (10 documents each) and a 7-day range on the compound index [doctor_id, day] (~380 matches, a page of 20),
   at 2 connections (latency) and 16 (throughput); beside it the trivial sandboxed handler /whoami
   (target: find p99 <= 10 ms).
2. A transaction of 3 writes (a day's counter, a booking, its ledger line: the probe's /db/tx3) through the
   sandbox on 2 server workers, 2 and 16 connections (target >= 1,000/s), beside the trivial handler's rate.

Every row carries the CPU per answered request (utime + stime from /proc, ms) of the server processes, their
sandbox workers and the PostgreSQL backends serving them (wrk's and Redis's are not counted): on 2 cores, a
figure that costs C ms of CPU per request cannot pass 2,000 / C requests/s whatever the load.

3. Beside them, without HTTP or sandbox: the find statement alone on one connection, and the platform's commit
   of the same 3 writes, 16 at a time on a pool of its own.

The 1,000,000 documents are written straight into the tables with the SDK's key encoding (yima_sdk.query), as
the platform's writes would leave them. Run: .venv/bin/python tests/bench/bench_db.py
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import asyncpg
import msgspec
from yima_sdk.manifest import load_manifest
from yima_sdk.query import index_keys, plan

from server.platform.db import index_repository as db_index_repository
from tests.bench._harness import lua_round_robin, print_table, wrk
from tests.e2e._real import fresh_database, private_folder, real_server, server_env, ship_and_use, sign_in
from tests.platform.conftest import new_app_id, write_probe

DOCUMENTS = 1_000_000
USERS = 100_000
DOCTORS = 50
ROUNDS, SECONDS = 3, 5
APP_WORKERS = 8
RESIDENTS = 8
"""Residents the calls are spread over (see where they sign in)."""
START = dt.date(2026, 1, 1)


RELATIONS = ("miniapp_records", "miniapp_records_pkey", "miniapp_record_keys", "miniapp_record_keys_pkey")
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def process_tree(root: int) -> set[int]:
    """`root` and its descendants (server workers, sandbox workers)."""
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                continue
    return found


def cpu_ms(pids: set[int]) -> dict[str, float]:
    """CPU used so far (utime + stime, ms) by the server's processes, its sandbox workers, and `pids` (the
    database's backends serving it), from /proc."""
    out = {"server": 0.0, "sandbox": 0.0, "postgres": 0.0}
    for pid in pids:
        try:
            raw = Path(f"/proc/{pid}/stat").read_bytes()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        fields = raw[raw.rindex(b")") + 2 :].split()
        used = (int(fields[11]) + int(fields[12])) * TICK_MS
        kind = "sandbox" if b"sandbox.worker" in cmd else "postgres" if b"python" not in cmd else "server"
        out[kind] += used
    return out


async def backends(dsn: str) -> set[int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return {r["pid"] for r in rows}


def document(i: int) -> dict[str, Any]:
    return {
        "day": (START + dt.timedelta(days=i * 7 % 365)).isoformat(),
        "user_id": f"u{i % USERS:06d}",
        "doctor_id": f"d{i % DOCTORS:02d}",
        "fee": 500,
        "note": "bench",
    }


async def seed(dsn: str, app_id: str, indexes: dict[str, tuple[str, ...]]) -> float:
    """Write the documents and their index keys with COPY; seconds taken."""
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        now = dt.datetime.now(dt.UTC)
        batch = 100_000
        for first in range(0, DOCUMENTS, batch):
            docs, keys = [], []
            for i in range(first, first + batch):
                body = document(i)
                doc_id = f"doc{i:07d}"
                text = json.dumps(body)
                docs.append((app_id, "bookings", doc_id, text, 1, len(text), now))
                keys += [
                    (app_id, "bookings", name, key, doc_id) for name, key in index_keys(indexes, body).items()
                ]
            await conn.execute("CREATE TEMP TABLE IF NOT EXISTS staged (LIKE miniapp_records)")
            await conn.execute("ALTER TABLE staged ALTER COLUMN body TYPE text")
            await conn.copy_records_to_table("staged", records=docs)
            await conn.execute(
                "INSERT INTO miniapp_records SELECT app_id, collection, doc_id, body::jsonb,"
                " version, size_bytes, updated_at FROM staged"
            )
            await conn.execute("DROP TABLE staged")
            await conn.copy_records_to_table("miniapp_record_keys", records=keys)
        for name in indexes:
            await conn.execute(
                "INSERT INTO miniapp_record_indexes VALUES ($1, 'bookings', $2, now())", app_id, name
            )
        await conn.execute(
            "UPDATE miniapps SET storage_keys = storage_keys + $2, storage_bytes = storage_bytes"
            " + (SELECT sum(size_bytes) FROM miniapp_records WHERE app_id = $1) WHERE app_id = $1",
            app_id,
            DOCUMENTS,
        )
        await conn.execute("ANALYZE miniapp_records")
        await conn.execute("ANALYZE miniapp_record_keys")
        # into the OS page cache, as a serving database has them (a cold page is a disk read of ms)
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        for relation in RELATIONS:
            await conn.execute("SELECT pg_prewarm($1, 'read')", relation)
    finally:
        await conn.close()
    return time.perf_counter() - started


async def query_alone(dsn: str, app_id: str, indexes: dict[str, tuple[str, ...]]) -> dict[str, list[float]]:
    """The platform's find statement straight on one connection (no HTTP, no sandbox), ms per query."""
    conn = await asyncpg.connect(dsn)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    timings: dict[str, list[float]] = {"user_id": [], "range": []}
    try:
        for k in range(3000):
            first = START + dt.timedelta(days=k * 11 % 350)
            queries = {
                "user_id": plan("bookings", indexes, {"user_id": f"u{k * 7 % USERS:06d}"}, None),
                "range": plan(
                    "bookings",
                    indexes,
                    {
                        "doctor_id": f"d{k % DOCTORS:02d}",
                        "day": {"gte": first.isoformat(), "lt": (first + dt.timedelta(days=7)).isoformat()},
                    },
                    None,
                ),
            }
            for name, query in queries.items():
                started = time.perf_counter()
                await db_index_repository.find(
                    conn,
                    app_id,
                    "bookings",
                    query.index,
                    query.ranges,
                    False,
                    None,
                    21 if name == "range" else 51,
                )
                timings[name].append((time.perf_counter() - started) * 1000)
    finally:
        await conn.close()
    return timings


async def commits_alone(
    dsn: str, app_id: str, manifest: dict[str, Any], tasks: int, seconds: float, tag: int
) -> float:
    """The platform's commit (server.platform.db.service.AppDb) of the same 3 writes as /db/tx3, `tasks` at a time on a
    pool of its own, no HTTP, no sandbox: commits per second."""
    from sandbox.capabilities import CallInfo
    from server.db import Database
    from server.platform.db.service import AppDb
    from server.platform.runtime.service import LiveApp, LiveVersion

    async def jsonb(conn: asyncpg.Connection) -> None:
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")

    pool = await asyncpg.create_pool(dsn, min_size=tasks, max_size=tasks, init=jsonb)
    live = LiveVersion(app_id, "bench", manifest)
    view = LiveApp(app_id, "bench", False, live, None, 0, frozenset(), 0, 0)
    runtime: Any = type(
        "View",
        (),
        {
            "apps": {app_id: view},
            "live_version": lambda self, a, v: live if (a, v) == (app_id, "bench") else None,
        },
    )()
    db = AppDb(Database(pool, 5.0), runtime)
    done = 0
    stop = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        n = w
        while time.perf_counter() < stop:
            writes: list[Any] = [
                {"kind": "counter_add", "name": f"alone:day:{n % 64}"},
                {"kind": "insert", "collection": "bookings", "id": f"alone-{tag}-{w}-{n}",
                 "value": {"day": "2026-04-01", "user_id": f"u{n}", "doctor_id": f"d{n % 16}"}},
                {"kind": "insert", "collection": "ledger", "id": f"alone-l-{tag}-{w}-{n}",
                 "value": {"booking": f"alone-{tag}-{w}-{n}", "fee": 500}},
            ]  # fmt: skip
            await db.handle(
                CallInfo(app_id=app_id, version="bench", call_id=n),
                c_commit(writes),
            )
            done += 1
            n += tasks

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(tasks)))
    elapsed = time.perf_counter() - started
    await pool.close()
    return done / elapsed


def c_commit(writes: list[Any]) -> Any:
    from yima_sdk import contract

    return contract.decode_operation("db", "commit", [], {"writes": writes})


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def main() -> None:
    with private_folder("yima-bench-") as folder, fresh_database() as dsn:
        env = server_env(dsn, folder / "data", redis=True, YIMA_LOG_LEVEL="WARNING", YIMA_DB_POOL_MAX="20")
        with real_server("serve", "--workers", "2", "--allow-development", env=env) as server:
            developer, operator = sign_in(server, role="developer"), sign_in(server, role="operator")
            probe = write_probe(folder / "src", new_app_id("benchdb"))
            manifest = probe / "miniapp.toml"
            # 8 sandbox workers per server process: a worker runs one call at a time, and a commit waits for its
            # WAL flush (~4-5 ms on this machine), so 2 workers would cap commits at ~2 per flush per process
            manifest.write_text(manifest.read_text().replace("workers = 1", f"workers = {APP_WORKERS}"))
            app_id, resident = ship_and_use(server, probe, developer, operator)
            r = operator.put(
                f"/v1/admin/miniapps/{app_id}/quotas",
                json={
                    "calls_per_minute": 10_000_000,
                    "resident_calls_per_minute": 100_000,
                    "storage_max_keys": 100_000_000,
                    "storage_max_bytes": 1 << 40,
                },
            )
            assert r.status_code == 200, r.text
            indexes = load_manifest(probe).collections["bookings"].index_fields
            seeded_s = asyncio.run(seed(dsn, app_id, indexes))
            alone = asyncio.run(query_alone(dsn, app_id, indexes))
            manifest_dict = msgspec.to_builtins(load_manifest(probe))
            commit_rates = [
                asyncio.run(commits_alone(dsn, app_id, manifest_dict, 16, SECONDS, r)) for r in range(ROUNDS)
            ]

            # Calls spread over several residents: one resident's quota (at most 100,000 calls a minute) would be
            # passed within a minute of rounds at the rates a quiet machine reaches, and a 429 is not a figure.
            residents = [resident, *(sign_in(server) for _ in range(RESIDENTS - 1))]
            each = [
                {"authorization": str(r.headers["authorization"]), "content-type": "application/json"}
                for r in residents
            ]
            find = f"/v1/miniapps/{app_id}/api/raw/db/find"
            by_user = [
                (
                    "POST",
                    find,
                    each[u % RESIDENTS],
                    json.dumps({"collection": "bookings", "where": {"user_id": f"u{u:06d}"}}),
                )
                for u in range(0, USERS, 7)
            ]
            by_range = []
            for k in range(5000):
                first = START + dt.timedelta(days=k * 11 % 350)
                where = {
                    "doctor_id": f"d{k % DOCTORS:02d}",
                    "day": {"gte": first.isoformat(), "lt": (first + dt.timedelta(days=7)).isoformat()},
                }
                by_range.append(
                    (
                        "POST",
                        find,
                        each[k % RESIDENTS],
                        json.dumps({"collection": "bookings", "where": where, "limit": 20}),
                    )
                )
            check = resident.post(find, content=by_range[0][3], headers={"content-type": "application/json"})
            assert check.status_code == 200 and len(check.json()["items"]) == 20, check.text
            check = resident.post(find, content=by_user[1][3], headers={"content-type": "application/json"})
            assert check.status_code == 200 and len(check.json()["items"]) == 10, check.text

            trivial = lua_round_robin([("GET", f"/v1/miniapps/{app_id}/api/whoami", h, "") for h in each])
            scripts = {
                "whoami (trivial handler)": trivial,
                "find user_id = x (10 docs)": lua_round_robin(by_user),
                "find doctor_id = x, 7-day range (page of 20)": lua_round_robin(by_range),
            }
            tx3 = lua_round_robin(
                [
                    ("POST", f"/v1/miniapps/{app_id}/api/db/tx3?n={n}", each[n % RESIDENTS], "")
                    for n in range(50_000)
                ]
            )
            for script in scripts.values():  # warm up both workers' pools, caches and the index pages
                wrk(server.url, script, connections=16, seconds=2)
            wrk(server.url, tx3, connections=16, seconds=2)
            runs: dict[tuple[str, int], list[dict[str, Any]]] = {}

            def measure(script: str, connections: int) -> dict[str, Any]:
                """One wrk run, with the CPU per request of the server, its sandbox workers and PostgreSQL."""
                pids = process_tree(server.proc.pid) | asyncio.run(backends(dsn))
                before = cpu_ms(pids)
                run = wrk(server.url, script, connections=connections, seconds=SECONDS)
                after, answered = cpu_ms(pids), max(1.0, run["rps"] * SECONDS)
                run.update({f"cpu_{k}": (after[k] - before[k]) / answered for k in after})
                return run

            for _ in range(ROUNDS):  # interleaved rounds: every figure sees the same machine state
                for name, script in scripts.items():
                    for connections in (2, 16):
                        runs.setdefault((name, connections), []).append(measure(script, connections))
                for connections in (2, 16):
                    runs.setdefault(("transaction of 3 writes", connections), []).append(
                        measure(tx3, connections)
                    )
            assert all(x["non_2xx"] == 0 for xs in runs.values() for x in xs), "non-2xx answers under load"

            def median(xs: list[dict[str, Any]], key: str) -> float:
                return statistics.median(x[key] for x in xs)

            rows = [
                (
                    "server",
                    f"yima serve --workers 2 (uvloop), PostgreSQL, Redis; app workers = {APP_WORKERS}",
                ),
                (
                    "documents",
                    f"{DOCUMENTS:,} in one collection, 3 indexes; seeded by COPY in {seeded_s:.0f} s",
                ),
            ]
            for (name, connections), xs in runs.items():
                rows.append(
                    (
                        f"{name}, {connections} conn",
                        f"{median(xs, 'rps'):7.0f} req/s  p50 {median(xs, 'p50'):6.2f} ms  "
                        f"p99 {median(xs, 'p99'):6.2f} ms  CPU ms/req: server {median(xs, 'cpu_server'):.2f}"
                        f" sandbox {median(xs, 'cpu_sandbox'):.2f} postgres {median(xs, 'cpu_postgres'):.2f}",
                    )
                )
            rows.append(("", f"median of {ROUNDS} interleaved {SECONDS} s wrk rounds"))
            for name, values in alone.items():
                rows.append(
                    (
                        f"the find statement alone, {name}",
                        f"p50 {percentile(values, 0.5):6.2f} ms  p99 {percentile(values, 0.99):6.2f} ms "
                        f"({len(values)} sequential queries, one connection)",
                    )
                )
            rows.append(
                (
                    "the commit alone, 3 writes",
                    f"{statistics.median(commit_rates):7.0f} commits/s (median of {ROUNDS} x {SECONDS} s, "
                    "16 at a time, one pool, no HTTP, no sandbox)",
                )
            )
            rows.append(("load average at the end", " ".join(f"{x:.1f}" for x in os.getloadavg())))
            print_table(rows)


if __name__ == "__main__":
    main()
