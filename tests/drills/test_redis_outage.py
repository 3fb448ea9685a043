"""Drill: Redis is killed (`kill -9`) under traffic to a real `yima serve`, then started again.

What must hold (docs/operations.md, "Redis outage"): no 500 at any moment; a route that cannot work without Redis
answers 503 `service.cache_unavailable` with Retry-After; a route that can degrade keeps answering (sessions from
PostgreSQL, rate limits per process; scans that spend a code once, on the durable claim alone); a session ended
during the outage stays ended; once Redis is back, yima
recovers without a restart; the outage is logged as a count per interval, not as an unhandled error per request.
"""

from __future__ import annotations

import collections
import json
import secrets
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import random_phone, valid_id_number
from tests.drills.services import drill_env, private_redis, wait_for, yima_serve
from tests.e2e._real import YIMA, enrol_terminal

# Authenticated reads, and the login flow's rate-limited OTP request: what phones send all day.
_TRAFFIC = (
    ("GET", "/v1/me"),
    ("GET", "/v1/me/codes/ankang"),
    ("GET", "/v1/me/health-status"),
    ("POST", "/v1/auth/otp"),
)


def _login(http: httpx.Client) -> dict[str, str]:
    phone = random_phone()
    assert http.post("/v1/auth/otp", json={"phone": phone}).status_code == 202
    code = http.get("/v1/dev/sms-outbox", params={"phone": phone}).json()[-1]["code"]
    r = http.post("/v1/auth/token", json={"phone": phone, "code": code})
    assert r.status_code == 200, r.text
    headers = {"authorization": f"Bearer {r.json()['access_token']}"}
    # A real name, so the resident may show an Ankang code.
    id_number = valid_id_number(
        birth=f"19{secrets.randbelow(90) + 10}0101", seq=f"{secrets.randbelow(1000):03d}"
    )
    r = http.put("/v1/me/identity", json={"name": "张三", "id_number": id_number}, headers=headers)
    assert r.status_code == 200, r.text
    return headers


def _operator(http: httpx.Client, env: dict[str, str]) -> httpx.Client:
    """An operator, granted with `yima admin grant` on the server's database, signed in by OTP."""
    phone = random_phone()
    granted = subprocess.run(
        [YIMA, "admin", "grant", "--phone", phone, "--role", "operator"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert granted.returncode == 0, granted.stderr
    assert http.post("/v1/auth/otp", json={"phone": phone}).status_code == 202
    code = http.get("/v1/dev/sms-outbox", params={"phone": phone}).json()[-1]["code"]
    r = http.post("/v1/auth/token", json={"phone": phone, "code": code})
    assert r.status_code == 200, r.text
    return httpx.Client(
        base_url=str(http.base_url),
        timeout=30,
        headers={"authorization": f"Bearer {r.json()['access_token']}"},
    )


def _scan(terminal: httpx.Client, payload: str) -> httpx.Response:
    return terminal.post("/v1/scans", json={"payload": payload, "scanned_at": int(time.time() * 1000)})


def _send(http: httpx.Client, headers: dict[str, str], method: str, path: str) -> httpx.Response:
    if method == "POST":
        return http.post(path, json={"phone": random_phone()}, headers=headers)
    return http.get(path, headers=headers)


def _round(http: httpx.Client, headers: dict[str, str], rounds: int) -> list[tuple[str, httpx.Response]]:
    return [(path, _send(http, headers, method, path)) for _ in range(rounds) for method, path in _TRAFFIC]


@pytest.mark.slow
def test_redis_killed_under_traffic_gives_no_500_and_recovers_without_restart(
    database_url: str, master_key: str, tmp_path: Path
) -> None:
    with private_redis(tmp_path / "redis") as redis:
        env = drill_env(
            database_url=database_url, master_key=master_key, redis_url=redis.url, data_dir=tmp_path / "data"
        )
        with (
            yima_serve(env, log_path=tmp_path / "yima.log") as server,
            httpx.Client(base_url=server.url, timeout=30) as http,
        ):
            resident = _login(http)
            leaving = _login(http)
            operator = _operator(http, env)
            till = enrol_terminal(server, operator, "pharmacy", f"till-{secrets.token_hex(3)}")  # "once"
            door = enrol_terminal(server, operator, "clinic", f"door-{secrets.token_hex(3)}")  # per terminal
            shopper, revoker = _login(http), _login(http)
            codes = {
                who: http.get("/v1/me/codes/ankang", headers=h).json()["payload"]
                for who, h in (("shopper", shopper), ("revoker", revoker), ("resident", resident))
            }
            before = _round(http, resident, 3)
            assert all(r.status_code < 300 for _, r in before), [
                (p, r.status_code, r.text) for p, r in before
            ]

            redis.kill()
            # Scans where a code is spent once: the durable claim in PostgreSQL decides alone. Accepted once;
            # sent again, refused as a replay; a code revoked meanwhile is refused (its generation read from
            # PostgreSQL in place of the mark in Redis). An entry scene's repeat check lives only in Redis: 503.
            first, again = _scan(till, codes["shopper"]), _scan(till, codes["shopper"])
            assert (first.status_code, first.json()["result"]) == (200, "accept"), first.text
            assert (again.status_code, again.json()["reason"]) == (200, "scan.replayed"), again.text
            http.post("/v1/me/codes/ankang/revoke", headers=revoker)  # committed, then 503: no mark in Redis
            revoked = _scan(till, codes["revoker"])
            assert (revoked.status_code, revoked.json()["reason"]) == (200, "credential.revoked"), (
                revoked.text
            )
            entry = _scan(door, codes["resident"])
            assert (entry.status_code, entry.json()["code"]) == (503, "service.cache_unavailable"), entry.text
            assert entry.headers.get("retry-after"), entry.headers
            during = _round(http, resident, 15)
            # Logging out needs no Redis: the ended session is recorded in PostgreSQL, and every worker whose
            # subscription is down asks PostgreSQL. It must stay refused during the outage and after it.
            assert http.post("/v1/auth/logout", headers=leaving).status_code == 204
            assert http.get("/v1/me", headers=leaving).status_code == 401
            during += _round(http, resident, 15)

            redis.start()
            wait_for(
                lambda: all(r.status_code < 300 for _, r in _round(http, resident, 1)),
                timeout_s=30,
                what="every route answering again after Redis restarted",
            )
            assert http.get("/v1/me", headers=leaving).status_code == 401
            # Redis never heard of the claim made during the outage: the durable one still refuses the code.
            after = _scan(till, codes["shopper"])
            assert (after.status_code, after.json()["reason"]) == (200, "scan.replayed"), after.text
            log = server.output()

    by_status = collections.Counter((path, r.status_code) for path, r in during)
    assert not [k for k in by_status if k[1] >= 500 and k[1] != 503], by_status
    for _, r in during:
        if r.status_code == 503:
            assert r.headers.get("retry-after"), r.text
            assert r.json()["code"] == "service.cache_unavailable"
    # Degraded, not refused: a resident's session and profile come from PostgreSQL, the OTP limit per process.
    assert by_status[("/v1/me", 200)] == 30, by_status
    assert by_status[("/v1/auth/otp", 202)] == 30, by_status

    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert not [entry for entry in lines if entry.get("msg") == "unhandled error"]
    assert not [line for line in log.splitlines() if "Task exception was never retrieved" in line]
    # One line per interval with a count, not one per request.
    outage = [entry for entry in lines if entry.get("logger") == "yima.outage"]
    assert len(outage) < 10, outage
