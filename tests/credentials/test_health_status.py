"""Health status by the authority: one by one, bulk files with per-line errors, idempotent imports, audit."""

from __future__ import annotations

import asyncio

from server.app import create_app
from tests.conftest import login, login_with_role, serve
from tests.credentials.helpers import random_id_number, verified_resident


async def _import(client, authority, text):
    return await client.post(
        "/v1/authority/health-status/imports",
        content=text.encode(),
        headers={**authority.headers, "content-type": "text/csv"},
    )


async def test_only_the_authority_sets_colours(client):
    resident, id_number = await verified_resident(client)
    r = await client.post(
        "/v1/authority/health-status",
        json={"id_number": id_number, "color": "red", "reason": "x"},
        headers=resident.headers,
    )
    assert r.status_code == 403
    authority = await login_with_role(client, "health_authority")
    bad = await client.post(
        "/v1/authority/health-status",
        json={"id_number": "341822199001011231", "color": "red", "reason": "x"},
        headers=authority.headers,
    )
    assert bad.status_code == 422 and bad.json()["code"] == "health.id_number_invalid"


async def test_bulk_import_applies_good_rows_reports_bad_ones_and_is_idempotent(client):
    authority = await login_with_role(client, "health_authority")
    resident, id_number = await verified_resident(client)
    unregistered = random_id_number()
    text = "\n".join(
        [
            "id_number,color,reason",
            f"{id_number},red,outbreak",
            "341822199001011231,red,checksum wrong",
            f"{unregistered},yellow",
            f"{id_number},purple",
            "just-one-cell",
            f"{unregistered},green,,not-a-time",
            "",
        ]
    )
    r = await _import(client, authority, text)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["applied"], body["rejected"]) == (2, 4)
    assert [e["line"] for e in body["errors"]] == [3, 5, 6, 7]
    assert "purple" in body["errors"][1]["reason"]
    code = (await client.get("/v1/me/codes/ankang", headers=resident.headers)).json()
    assert code["color"] == "red"
    # The same file again, twice at once on two workers: nothing is applied a second time.
    async with serve(create_app(client.app.state.core.settings)) as worker_b:
        again = await asyncio.gather(_import(client, authority, text), _import(worker_b, authority, text))
    assert [a.json()["repeated"] for a in again] == [True, True]
    assert [a.json()["applied"] for a in again] == [2, 2]
    history = (await client.get("/v1/me/health-status", headers=resident.headers)).json()["history"]
    assert [h["color"] for h in history] == ["red"]
    # A resident who registers later finds the colour set before they had an account.
    newcomer = await login(client)
    r = await client.put(
        "/v1/me/identity", json={"name": "赵六", "id_number": unregistered}, headers=newcomer.headers
    )
    assert r.status_code == 200
    assert (await client.get("/v1/me/codes/ankang", headers=newcomer.headers)).json()["color"] == "yellow"


async def test_every_change_is_audited_without_the_id_number(client):
    authority = await login_with_role(client, "health_authority")
    resident, id_number = await verified_resident(client)
    await client.post(
        "/v1/authority/health-status",
        json={"id_number": id_number, "color": "yellow", "reason": "r"},
        headers=authority.headers,
    )
    async with client.app.state.core.db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT actor, action, details::text AS d FROM audit_log WHERE target = $1 ORDER BY seq DESC LIMIT 1",
            f"account:{resident.account_id}",
        )
    assert (row["actor"], row["action"]) == (f"account:{authority.account_id}", "health.status_set")
    assert id_number not in row["d"]
