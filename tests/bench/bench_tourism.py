"""Tourism benchmark against the real core: `yima dev` (the CLI, first-party apps, their seed jobs) runs the
tourism app; a spot's staff publishes one slot of 300 places; 2,000 signed-in visitors then reserve it at once
through the gateway (all 2,000 requests sent together over 200 connections; a 503 `miniapp.busy`, the sandbox's
full queue, is sent again after its Retry-After as the shell does). It checks the outcome (exactly 300 tickets,
1,700 `tourism.full`, no other final answer) and prints reservations/s and the latency percentiles, measured
from the moment all requests were sent.

Run: .venv/bin/python tests/bench/bench_tourism.py [VISITORS] [PLACES]
"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from yima_sdk.cron import COUNTY_TIME

from server.seed import DEMO_OPERATOR_PHONE
from tests.bench._harness import print_table
from tests.e2e._real import eventually, private_folder, real_server, server_env, sign_in

APP = "gov.guangde.tourism"
API = f"/v1/miniapps/{APP}/api"
CONNECTIONS = 200


async def reserve_all(
    url: str, tokens: list[str], slot: str
) -> tuple[list[int], list[str], list[float], float]:
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        start = time.perf_counter()

        async def one(token: str) -> tuple[int, str, float, int]:
            busy = 0
            while (
                True
            ):  # as the shell does: a 503 is sent again after its Retry-After (a reservation is idempotent)
                r = await client.post(
                    f"{API}/slots/{slot}/reserve", headers={"authorization": f"Bearer {token}"}
                )
                if r.status_code != 503:
                    break
                busy += 1
                await asyncio.sleep(float(r.headers.get("retry-after", "1")))
            code = r.json().get("code", "") if r.status_code != 201 else ""
            return r.status_code, code, time.perf_counter() - start, busy

        answers = await asyncio.gather(*(one(t) for t in tokens))
        wall = time.perf_counter() - start
    return (
        [a[0] for a in answers],
        [a[1] for a in answers],
        [a[2] for a in answers],
        wall,
        sum(a[3] for a in answers),
    )


def main() -> None:
    visitors = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    places = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    with private_folder("yima-bench-tourism-") as folder:
        env = server_env("", folder / "data", redis=False, YIMA_DEV_FIRST_PARTY="1", YIMA_LOG_LEVEL="WARNING",
                         YIMA_OTP_PER_ADDRESS_PER_HOUR="1000000")  # fmt: skip
        with real_server("dev", env=env) as server:
            operator = sign_in(server, DEMO_OPERATOR_PHONE)
            r = operator.put(
                f"/v1/admin/miniapps/{APP}/quotas",
                json={"calls_per_minute": 10_000_000, "resident_calls_per_minute": 100_000},
            )
            assert r.status_code == 200, r.text
            keeper = sign_in(server)
            body = {
                "account_id": keeper.get("/v1/me").json()["id"],
                "role": "spot_staff",
                "unit": "spot:taiji-cave",
            }
            assert operator.post(f"/v1/miniapps/{APP}/staff", json=body).status_code == 201
            eventually(lambda: keeper.get(f"{API}/spots").json()["spots"], limit_s=60)  # the seed job ran
            today = dt.datetime.now(COUNTY_TIME).date().isoformat()
            body = {"spot": "taiji-cave", "day": today, "start": "00:00", "end": "23:59", "capacity": places}
            r = keeper.post(f"{API}/staff/slots", json=body)
            assert r.status_code == 201, r.text
            slot = r.json()["id"]

            def visitor(_: int) -> str:
                client = sign_in(server)
                assert client.get(f"{API}/tickets").status_code == 200  # opened the app once
                return str(client.headers["authorization"]).removeprefix("Bearer ")

            with ThreadPoolExecutor(16) as pool:
                tokens = list(pool.map(visitor, range(visitors)))
            statuses, codes, seconds, wall, busy = asyncio.run(reserve_all(server.url, tokens, slot))
            made = statuses.count(201)
            full = sum(1 for s, c in zip(statuses, codes, strict=True) if s == 409 and c == "tourism.full")
            errors = visitors - made - full
            live = keeper.get(f"{API}/staff/spots/taiji-cave/live").json()
            ms = sorted(s * 1000 for s in seconds)
            print_table([
                ("server", "yima dev (first-party apps; embedded PostgreSQL, in-process cache)"),
                ("visitors / places", f"{visitors} / {places}, all sent at once over {CONNECTIONS} connections"),
                ("tickets made", f"{made} (reserved by the app's count: {live['reserved']})"),
                ("tourism.full", f"{full}"),
                ("other answers", f"{errors} {sorted(set(zip(statuses, codes, strict=True)) - {(201, ''), (409, 'tourism.full')})}"),
                ("503 miniapp.busy", f"{busy} answers, each sent again after its Retry-After"),
                ("reservations/s", f"{visitors / wall:8.1f} answered/s over {wall:.1f} s ({made / wall:.1f} tickets/s)"),
                ("latency", f"p50 {statistics.median(ms):.0f} ms  p99 {ms[int(len(ms) * 0.99) - 1]:.0f} ms  "
                            f"max {ms[-1]:.0f} ms (from the moment all were sent)"),
            ])  # fmt: skip
            assert made == places == live["reserved"] and errors == 0


if __name__ == "__main__":
    main()
