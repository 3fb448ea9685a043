"""Tourism benchmark against the real core: `yima dev` (the CLI, first-party apps, their seed jobs) runs the
tourism app; a spot's staff publishes one slot of 300 places; 2,000 signed-in visitors then reserve it at once
through the gateway: two client processes (asyncio streams, not the server's interpreter) hold 200 kept-alive
connections, each sending the next visitor's request as soon as it has an answer; a 503 `miniapp.busy`, the
sandbox's full queue, is sent again after its Retry-After as the shell does. It checks the outcome (exactly 300
tickets, 1,700 `tourism.full`, no other final answer) and prints reservations/s and the latency percentiles, each
request's from its own send and from the common start (which adds the wait for a free connection), and the
client's CPU. (httpx's AsyncClient with 2,000 requests queued on a 200-connection pool spent ~90 s of one core in
its pool's queue, O(queued x connections) per request, before the server saw most requests: docs/benchmarks.md.)

Run: .venv/bin/python tests/bench/bench_tourism.py [VISITORS] [PLACES]
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import multiprocessing as mp
import re
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from yima_sdk.cron import COUNTY_TIME

from server.seed import DEMO_OPERATOR_PHONE
from tests.bench._harness import print_table
from tests.bench.loadgen import http_request, read_answer
from tests.e2e._real import eventually, private_folder, real_server, server_env, sign_in

APP = "gov.guangde.tourism"
API = f"/v1/miniapps/{APP}/api"
CONNECTIONS = 200
PROCESSES = 2


def _reserve_share(
    url: str, path: str, tokens: list[str], connections: int, start_at: float, conn: Connection
) -> None:
    """One client process: `connections` kept-alive connections, each reserving for the next visitor of this
    share as soon as it has its previous answer; sends back (status, code, sent, answered, busy) per visitor
    (times in seconds from `start_at`) and the process's own CPU seconds."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    visitors = iter(tokens)  # shared by this process's connections: each visitor is taken once
    results: list[tuple[int, str, float, float, int]] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        try:
            for token in visitors:
                sent, busy = time.time() - start_at, 0
                request = http_request(
                    "POST", path, host=parts.netloc, headers={"authorization": f"Bearer {token}"}
                )
                while (
                    True
                ):  # as the shell does: a 503 is sent again after its Retry-After (reserving is idempotent)
                    writer.write(request)
                    status, head, body = await read_answer(reader)
                    if status != 503:
                        break
                    busy += 1
                    match = re.search(rb"(?i)\r\nretry-after: *(\d+)", head)
                    await asyncio.sleep(float(match.group(1)) if match else 1.0)
                code = "" if status == 201 else str(json.loads(body).get("code", ""))
                results.append((status, code, sent, time.time() - start_at, busy))
        finally:
            writer.close()

    async def run() -> None:
        await asyncio.gather(*(connection() for _ in range(connections)))

    asyncio.run(run())
    conn.send((results, time.process_time()))


def reserve_all(
    url: str, tokens: list[str], slot: str
) -> tuple[list[tuple[int, str, float, float, int]], float]:
    """All visitors reserve at once from PROCESSES client processes over CONNECTIONS connections in all (each
    connection takes the next visitor as soon as it has an answer). Returns each visitor's answer with its send
    and answer times (seconds from the common start) and the client processes' CPU seconds."""
    ctx = mp.get_context("fork")
    start_at = time.time() + 1.0  # every process has connected by then
    pipes, procs = [], []
    for p in range(PROCESSES):
        parent, child = ctx.Pipe(duplex=False)
        share = tokens[p::PROCESSES]
        args = (url, f"{API}/slots/{slot}/reserve", share, CONNECTIONS // PROCESSES, start_at, child)
        proc = ctx.Process(target=_reserve_share, args=args)
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    answers: list[tuple[int, str, float, float, int]] = []
    cpu = 0.0
    for parent in pipes:
        results, used = parent.recv()
        answers.extend(results)
        cpu += used
    for proc in procs:
        proc.join()
    return answers, cpu


def percentiles(seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    return (
        f"p50 {statistics.median(ms):.0f} ms  p99 {ms[int(len(ms) * 0.99) - 1]:.0f} ms  max {ms[-1]:.0f} ms"
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
            answers, client_cpu = reserve_all(server.url, tokens, slot)
            statuses = [a[0] for a in answers]
            codes = [a[1] for a in answers]
            wall = max(a[3] for a in answers)
            busy = sum(a[4] for a in answers)
            made = statuses.count(201)
            full = sum(1 for s, c in zip(statuses, codes, strict=True) if s == 409 and c == "tourism.full")
            errors = visitors - made - full
            live = keeper.get(f"{API}/staff/spots/taiji-cave/live").json()
            print_table([
                ("server", "yima dev (first-party apps; embedded PostgreSQL, in-process cache)"),
                ("visitors / places", f"{visitors} / {places}, all at once over {CONNECTIONS} connections "
                                      f"from {PROCESSES} client processes"),
                ("tickets made", f"{made} (reserved by the app's count: {live['reserved']})"),
                ("tourism.full", f"{full}"),
                ("other answers", f"{errors} {sorted(set(zip(statuses, codes, strict=True)) - {(201, ''), (409, 'tourism.full')})}"),
                ("503 miniapp.busy", f"{busy} answers, each sent again after its Retry-After"),
                ("reservations/s", f"{visitors / wall:8.1f} answered/s over {wall:.1f} s ({made / wall:.1f} tickets/s)"),
                ("latency per request", percentiles([a[3] - a[2] for a in answers]) + " (from its own send)"),
                ("latency from start", percentiles([a[3] for a in answers]) + " (queued behind the connections)"),
                ("client CPU", f"{client_cpu:.1f} s over {wall:.1f} s in {PROCESSES} processes"),
            ])  # fmt: skip
            assert made == places == live["reserved"] and errors == 0


if __name__ == "__main__":
    main()
