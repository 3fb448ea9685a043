"""The operator's audit routes: search the log, and verify the chain with the first broken record named."""

from __future__ import annotations

import asyncpg

from tests.conftest import login, login_with_role


async def test_operators_search_the_log_and_verify_names_the_first_broken_record(client, database_url):
    resident = await login(client)
    assert (await client.get("/v1/admin/audit", headers=resident.headers)).status_code == 403
    assert (await client.post("/v1/admin/audit/verify", headers=resident.headers)).status_code == 403
    operator = await login_with_role(client, "operator")
    for scene in ("audit-scene-a", "audit-scene-b"):
        r = await client.post(
            "/v1/admin/terminal-enrolments",
            json={"name": "Gate", "kind": "scenic", "scene": scene},
            headers=operator.headers,
        )
        assert r.status_code == 201

    r = await client.get("/v1/admin/audit", params={"q": "AUDIT-SCENE"}, headers=operator.headers)
    found = r.json()
    assert [x["target"] for x in found] == ["scene:audit-scene-b", "scene:audit-scene-a"]  # newest first
    assert found[0]["action"] == "terminal.enrolment_created" and found[0]["details"]["kind"] == "scenic"
    older = await client.get(
        "/v1/admin/audit", params={"q": "audit-scene", "before": found[0]["seq"]}, headers=operator.headers
    )
    assert [x["seq"] for x in older.json()] == [found[1]["seq"]]
    exact = await client.get(
        "/v1/admin/audit", params={"target": "scene:audit-scene-a"}, headers=operator.headers
    )
    assert [x["seq"] for x in exact.json()] == [found[1]["seq"]]
    assert (await client.get("/v1/admin/audit", params={"q": "%"}, headers=operator.headers)).json() == []

    r = await client.post("/v1/admin/audit/verify", headers=operator.headers)
    assert r.status_code == 200 and r.json()["intact"] is True and r.json()["checked"] >= found[0]["seq"]

    # Someone with the database's superuser changes one record: the console names it.
    seq = found[1]["seq"]
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "SET session_replication_role = replica"
        )  # the append-only trigger stops even them
        original = await conn.fetchval("SELECT details::text FROM audit_log WHERE seq = $1", seq)
        await conn.execute("""UPDATE audit_log SET details = '{"kind": "bus"}' WHERE seq = $1""", seq)
        r = await client.post("/v1/admin/audit/verify", headers=operator.headers)
        assert r.json()["intact"] is False
        broken = r.json()["broken"]
        assert broken["seq"] == seq and broken["problem"] == "changed"
        assert broken["record"]["target"] == "scene:audit-scene-a" and broken["record"]["details"] == {
            "kind": "bus"
        }
    finally:  # the log is the session's: put the record back as it was
        await conn.execute("UPDATE audit_log SET details = $2::text::jsonb WHERE seq = $1", seq, original)
        await conn.close()
    r = await client.post("/v1/admin/audit/verify", headers=operator.headers)
    assert r.json()["intact"] is True
