"""Benchmark: 500 residents booking one 50-slot session of the medical visits app (miniapps/medical) at once,
through the real gateway of `yima dev` (the first-party apps released and seeded, on PostgreSQL and Redis):
exactly 50 booked, 450 clear refusals (409 `medical.full`), no error; bookings/s and the latency percentiles.
Each resident asks once, with no retry: the gateway queues a burst for the app's workers rather than shedding it,
so every answer is the app's own decision (any other answer is counted and named).

.venv/bin/python tests/bench/bench_medical.py [residents] [slots]
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx
from yima_sdk.cron import COUNTY_TIME

from tests.bench._harness import prepare, print_table, run
from tests.e2e._real import eventually, fresh_database, private_folder, real_server, server_env, sign_in

API = "/v1/miniapps/gov.guangde.medical/api"


async def book_all(url: str, tokens: list[str], session: str) -> tuple[list[tuple[int, str, float]], float]:
    limits = httpx.Limits(max_connections=len(tokens), max_keepalive_connections=len(tokens))
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:

        async def one(token: str) -> tuple[int, str, float]:
            started = time.perf_counter()
            r = await http.post(
                f"{API}/sessions/{session}/book", headers={"authorization": f"Bearer {token}"}
            )
            code = r.json().get("code", "") if r.status_code >= 400 else ""
            return r.status_code, code, (time.perf_counter() - started) * 1000

        started = time.perf_counter()
        answers = await asyncio.gather(*(one(t) for t in tokens))
        return list(answers), time.perf_counter() - started


def main() -> None:
    residents = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    slots = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    with private_folder("yima-bench-medical-") as folder, fresh_database() as dsn:
        env = server_env(dsn, folder / "data", redis=True, YIMA_DEV_FIRST_PARTY="1")
        with real_server("dev", env=env) as server:
            operator = sign_in(server, role="operator")
            scheduler = sign_in(server)
            grant = {"account_id": scheduler.get("/v1/me").json()["id"], "role": "scheduler",
                     "unit": "institution:guangde-people"}  # fmt: skip
            r = operator.post("/v1/miniapps/gov.guangde.medical/staff", json=grant)
            assert r.status_code == 201, r.text
            day = (dt.datetime.now(COUNTY_TIME).date() + dt.timedelta(days=10)).isoformat()
            body = {"doctor": "dr-chen", "day": day, "half": "am", "capacity": slots, "fee_fen": 500}
            published = eventually(
                lambda: scheduler.post(f"{API}/staff/sessions", json=body).status_code == 201, 60
            )
            assert published
            port = int(server.url.rsplit(":", 1)[1])
            seeded = run(prepare(dsn, env["YIMA_MASTER_KEY"], env["YIMA_REDIS_NAMESPACE"], port,
                                 residents=residents, terminals=0, kind="clinic"))  # fmt: skip
            answers, wall = asyncio.run(book_all(server.url, seeded["resident_tokens"], f"dr-chen.{day}.am"))
    outcomes = Counter((status, code) for status, code, _ in answers)
    latencies = sorted(ms for _, _, ms in answers)
    booked = outcomes[(201, "")]
    others = {
        f"{s} {c}": n for (s, c), n in outcomes.items() if (s, c) not in {(201, ""), (409, "medical.full")}
    }
    print_table(
        [
            ("residents at once / slots", f"{residents} / {slots}"),
            ("booked (201)", str(booked)),
            ("refused 409 medical.full", str(outcomes[(409, "medical.full")])),
            ("anything else", f"{sum(others.values())} {others or ''}"),
            ("load average (1 min) after", f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"),
            ("wall time", f"{wall:.2f} s"),
            ("requests/s", f"{residents / wall:.0f}"),
            ("bookings/s", f"{booked / wall:.1f}"),
            (
                "latency min / p10 / p50 / p90 / p99",
                " / ".join(
                    f"{latencies[max(int(q * len(latencies)) - 1, 0)]:.0f}" for q in (0, 0.1, 0.5, 0.9, 0.99)
                )
                + " ms",
            ),
        ]
    )
    assert booked == slots and outcomes[(409, "medical.full")] == residents - slots, outcomes


if __name__ == "__main__":
    main()
