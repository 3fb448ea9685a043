"""Every route declares who may call it; residents cannot reach operator routes or other residents' data."""

from __future__ import annotations

from server.app import create_app
from server.settings import load_settings
from tests.conftest import login, login_with_role


def test_every_route_declares_its_callers():
    app = create_app(load_settings({}, mode="development"))
    undeclared = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            automatic = handler.http_methods == {"OPTIONS"} or any(
                p.startswith("/schema") for p in handler.paths
            )
            if "allow" not in handler.opt and not automatic:
                undeclared.append(sorted(handler.paths))
    assert undeclared == []


async def test_resident_cannot_call_operator_routes(client):
    resident = await login(client)
    r = await client.get(f"/v1/admin/accounts/{resident.account_id}", headers=resident.headers)
    assert r.status_code == 403
    assert r.json()["code"] == "auth.forbidden"
    r = await client.post(
        f"/v1/admin/accounts/{resident.account_id}/roles", json={"role": "operator"}, headers=resident.headers
    )
    assert r.status_code == 403
    me = (await client.get("/v1/me", headers=resident.headers)).json()
    assert me["roles"] == ["resident"]


async def test_resident_cannot_read_another_residents_data(client):
    alice, bob = await login(client), await login(client)
    r = await client.get(f"/v1/admin/accounts/{bob.account_id}", headers=alice.headers)
    assert r.status_code == 403
    # /v1/me only ever answers about the caller.
    assert (await client.get("/v1/me", headers=alice.headers)).json()["id"] == alice.account_id


async def test_unauthenticated_calls_are_401(client):
    for method, path in [("GET", "/v1/me"), ("POST", "/v1/auth/logout"), ("GET", "/v1/admin/accounts/1")]:
        r = await client.request(method, path)
        assert r.status_code == 401, path
        assert r.json()["code"] == "auth.required"


async def test_operator_grants_roles_and_it_is_audited(client):
    operator = await login_with_role(client, "operator")
    resident = await login(client)
    r = await client.post(
        f"/v1/admin/accounts/{resident.account_id}/roles",
        json={"role": "grid_worker"},
        headers=operator.headers,
    )
    assert r.status_code == 200 and r.json()["changed"] is True
    bad = await client.post(
        f"/v1/admin/accounts/{resident.account_id}/roles", json={"role": "emperor"}, headers=operator.headers
    )
    assert bad.status_code == 400 and bad.json()["code"] == "request.invalid"
    refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": resident.refresh_token})
    assert refreshed.status_code == 401  # a role change ends the account's sessions; the next login has it
    again = await login(client, resident.phone)
    me = (await client.get("/v1/me", headers=again.headers)).json()
    assert me["roles"] == ["grid_worker", "resident"]
    async with client.app.state.core.db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT actor, action, details FROM audit_log WHERE target = $1 ORDER BY seq DESC LIMIT 1",
            f"account:{resident.account_id}",
        )
    assert (row["actor"], row["action"], row["details"]) == (
        f"account:{operator.account_id}",
        "role.granted",
        {"role": "grid_worker"},
    )
    missing = await client.get("/v1/admin/accounts/999999999", headers=operator.headers)
    assert missing.status_code == 404 and missing.json()["code"] == "account.not_found"
