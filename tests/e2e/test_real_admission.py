"""Admission under a burst and commit retries, through a real `yima serve --workers 2`: calls queue for the app's
workers instead of being shed, and a commit that hits a serialization failure is retried by the platform; what the
resident sees is the right answer in both cases, never a 5xx."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import asyncpg
import httpx

from tests.e2e._real import (
    RealServer,
    fresh_database,
    private_folder,
    real_server,
    server_env,
    ship_and_use,
    sign_in,
)
from tests.platform.conftest import new_app_id, write_probe


def _probe(server: RealServer, folder: Path, workers: int) -> tuple[str, httpx.Client]:
    developer, operator = sign_in(server, role="developer"), sign_in(server, role="operator")
    probe = write_probe(folder / "src", new_app_id("admission"))
    manifest = probe / "miniapp.toml"
    manifest.write_text(manifest.read_text().replace("workers = 1", f"workers = {workers}"))
    app_id, resident = ship_and_use(server, probe, developer, operator)
    r = operator.put(
        f"/v1/admin/miniapps/{app_id}/quotas",
        json={"calls_per_minute": 1_000_000, "resident_calls_per_minute": 100_000},
    )
    assert r.status_code == 200, r.text
    return app_id, resident


async def _book_all(server: RealServer, app_id: str, auth: str, calls: int, slots: int) -> Counter[object]:
    """`calls` bookings sent at once, each on its own connection, no retries: the status (and code) of each."""
    limits = httpx.Limits(max_connections=calls, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=120) as client:

        async def book(n: int) -> object:
            r = await client.post(
                f"/v1/miniapps/{app_id}/api/db/book",
                params={"slots": slots, "n": n},
                headers={"authorization": auth},
            )
            return r.status_code if r.status_code in (201, 409) else (r.status_code, r.text[:200])

        return Counter(await asyncio.gather(*(book(n) for n in range(calls))))


def test_500_bookings_at_once_are_queued_and_answered_without_retries() -> None:
    with private_folder() as folder, fresh_database() as dsn:
        env = server_env(dsn, folder / "data", redis=True, YIMA_DB_POOL_MAX="20")
        with real_server("serve", "--workers", "2", "--allow-development", env=env) as server:
            app_id, resident = _probe(server, folder, workers=4)
            auth = str(resident.headers["authorization"])
            answers = asyncio.run(_book_all(server, app_id, auth, calls=500, slots=50))
            assert answers == Counter({201: 50, 409: 450}), answers
            r = resident.get(f"/v1/miniapps/{app_id}/api/db/bookings/2026-03-02")
            assert r.status_code == 200 and r.json() == {"count": 50, "taken": 50}, r.text


def test_a_serialization_failure_is_retried_and_the_count_stays_exact() -> None:
    # The operator switches the database to SERIALIZABLE once the server runs (its connections are then opened
    # anew): concurrent commits on one counter really fail with SQLSTATE 40001, which the platform retries
    # (server/platform/db/service.py) and writes to the app's log. The residents see only the right answers.
    with private_folder() as folder, fresh_database() as dsn:
        env = server_env(dsn, folder / "data", redis=True, YIMA_DB_POOL_MAX="20", YIMA_LOG_LEVEL="INFO")
        with real_server("serve", "--workers", "2", "--allow-development", env=env) as server:
            app_id, resident = _probe(server, folder, workers=4)
            auth = str(resident.headers["authorization"])

            async def serializable() -> None:
                conn = await asyncpg.connect(dsn)
                try:
                    await conn.execute(
                        f'ALTER DATABASE "{dsn.rpartition("/")[2]}" SET default_transaction_isolation = serializable'
                    )
                    await conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                finally:
                    await conn.close()

            asyncio.run(serializable())
            answers = asyncio.run(_book_all(server, app_id, auth, calls=60, slots=20))
            assert answers == Counter({201: 20, 409: 40}), answers
            r = resident.get(f"/v1/miniapps/{app_id}/api/db/bookings/2026-03-02")
            assert r.status_code == 200 and r.json() == {"count": 20, "taken": 20}, r.text
            retried = [line for line in server.output().splitlines() if "commit retried" in line]
            assert retried and all("40001" in line for line in retried), server.output()[-3000:]
