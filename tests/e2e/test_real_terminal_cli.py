"""`yima terminal scan --offline` and `yima terminal upload` against a real `yima dev`: the demo clinic terminal
decides with the terminal SDK on the lists it synced, and keeps working when the server's revocation list carries
a kind this SDK does not know (a newer server's), still refusing the codes the known entries revoke."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import asyncpg
import httpx

from tests.e2e._real import YIMA, fresh_database, private_folder, real_server, server_env, verified_resident

FUTURE_REF = bytes([7]) * 12
"""The reference of the newer kind's entry: whatever it means, no terminal may print it."""


def cli(server: Any, *argv: str) -> subprocess.CompletedProcess[str]:
    data = server.env["YIMA_DATA_DIR"]
    return subprocess.run(
        [YIMA, "terminal", *argv[:1], "--data-dir", data, "--url", server.url, *argv[1:]],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def scan_offline(server: Any, payload: str) -> tuple[dict[str, Any], str]:
    done = cli(server, "scan", "--offline", payload)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout), done.stderr


def code_of(resident: httpx.Client) -> str:
    r = resident.get("/v1/me/codes/ankang")
    assert r.status_code == 200, r.text
    return str(r.json()["payload"])


async def publish_a_newer_kind(database_url: str) -> None:
    """What a newer server would publish: an entry of a kind this SDK does not know, on our issuer's list between
    known entries (the newer server's migration widens the kind check; this test does it by hand)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check")
        await conn.execute(
            """INSERT INTO revocations (issuer, version, kind, ref, revoked_at, expires_at, reason)
               SELECT 341822, coalesce(max(version), 0) + 1, 'door_plate_v2', $1, now(), now() + interval '1 day',
                      'a newer kind' FROM revocations WHERE issuer = 341822""",
            FUTURE_REF,
        )
    finally:
        await conn.close()


def test_the_cli_terminal_applies_a_newer_servers_revocation_list_and_refuses_what_it_knows() -> None:
    with private_folder() as folder, fresh_database() as database_url:
        with real_server("dev", env=server_env(database_url, folder / "data", redis=False)) as server:
            lost, stolen, holder = (verified_resident(server) for _ in range(3))
            lost_code, stolen_code = code_of(lost), code_of(stolen)
            answer, _ = scan_offline(server, code_of(holder))  # synced before anything was revoked
            assert (answer["result"], answer["mode"], answer["pending"]) == ("accept", "offline", 1), answer

            assert lost.post("/v1/me/codes/ankang/revoke").status_code == 200
            asyncio.run(publish_a_newer_kind(database_url))
            assert stolen.post("/v1/me/codes/ankang/revoke").status_code == 200

            answer, warned = scan_offline(server, lost_code)
            assert (answer["result"], answer["reason"]) == ("reject", "credential.revoked"), answer
            assert answer["revocation_kinds_skipped"] == {"door_plate_v2": 1}
            assert "door_plate_v2 x1" in warned, warned  # logged by kind and count ...
            assert FUTURE_REF.hex() not in warned and "BwcH" not in warned  # ... never by reference
            answer, _ = scan_offline(server, stolen_code)  # revoked after the newer entry
            assert (answer["result"], answer["reason"]) == ("reject", "credential.revoked"), answer
            answer, _ = scan_offline(server, code_of(holder))
            assert (answer["result"], answer["pending"]) == ("accept", 4), answer

            done = cli(server, "upload")
            assert done.returncode == 0 and json.loads(done.stdout) == {"uploaded": 4}, (
                done.stdout + done.stderr
            )
