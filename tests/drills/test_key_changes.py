"""Drill: `yima keys rotate` and `yima keys retire` take effect on every worker the moment they return.

Two workers of a real `yima serve`, idle since their last code; the CLI rotates the issuer key, retires the old
one, then retires the current one as if it had leaked. Right after each command returns, codes fetched over fresh
connections (spread over both workers by the kernel) are all signed by the current key, and every key operation
is in the audit log.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.drills.services import YIMA, drill_env, private_redis, yima_serve
from tests.drills.test_redis_outage import _login


def _signing_kids(url: str, headers: dict[str, str], fetches: int = 24) -> set[str]:
    """The key ids of codes fetched each over a new connection: the kernel spreads them over the workers."""
    kids = set()
    for _ in range(fetches):
        with httpx.Client(base_url=url, timeout=30) as fresh:
            r = fresh.get("/v1/me/codes/ankang", headers=headers)
            assert r.status_code == 200, r.text
            kids.add(r.json()["key_id"])
    return kids


def _trust_list_kids(url: str) -> set[str]:
    envelope = httpx.get(url + "/v1/trust-list", timeout=30).json()
    document = json.loads(
        base64.urlsafe_b64decode(envelope["document"] + "=" * (-len(envelope["document"]) % 4))
    )
    return {entry["key_id"] for entry in document["entries"]}


def _keys(env: dict[str, str], *args: str) -> str:
    r = subprocess.run([YIMA, "keys", *args], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _active_issuer_kid(listing: str) -> str:
    return next(line.split()[0] for line in listing.splitlines() if " issuer " in line and " active " in line)


async def _key_audit(database_url: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT action, target FROM audit_log WHERE action LIKE 'key.%' ORDER BY seq")
    finally:
        await conn.close()
    return [(r["action"], r["target"]) for r in rows]


@pytest.mark.slow
async def test_idle_workers_sign_only_with_the_current_key_after_rotate_and_retire(
    database_url: str, master_key: str, tmp_path: Path
) -> None:
    with private_redis(tmp_path / "redis") as redis:
        env = drill_env(
            database_url=database_url, master_key=master_key, redis_url=redis.url, data_dir=tmp_path / "data"
        )
        with yima_serve(env, log_path=tmp_path / "yima.log", workers=2) as server:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                resident = _login(http)
            first = _active_issuer_kid(_keys(env, "list"))
            assert _signing_kids(server.url, resident) == {first}

            rotated = _keys(env, "rotate")
            second = _active_issuer_kid(rotated)
            assert second != first
            assert "workers confirmed: 3 of 3" in rotated  # two workers and the CLI's own store
            assert second in _trust_list_kids(server.url)  # listed before anyone signs with it
            assert _signing_kids(server.url, resident) == {second}

            _keys(env, "retire", first)
            assert _signing_kids(server.url, resident) == {second}

            # The current key leaked: retired without a successor prepared. A new key signs at once, everywhere.
            retired = _keys(env, "retire", second)
            assert "workers confirmed: 3 of 3" in retired
            kids = _signing_kids(server.url, resident)
            assert len(kids) == 1 and not kids & {first, second}, kids
            log = server.output()

    assert "Task exception was never retrieved" not in log
    audited = await _key_audit(database_url)
    assert ("key.created", f"key:{second}") in audited
    assert ("key.retired", f"key:{first}") in audited
    assert ("key.retired", f"key:{second}") in audited
