"""Attacks on roles (issue 16, point 8): a revoked role must end at once, and nobody grants themselves or their
peers the roles that guard the platform (separation of duties, server/auth/roles.py)."""

from __future__ import annotations

from server.auth.roles import Role
from tests.conftest import AppClient, Session, login, login_with_role


async def _grant(client: AppClient, by: Session, account_id: int, role: str, *, revoke: bool = False):
    path = f"/v1/admin/accounts/{account_id}/roles" + ("/revoke" if revoke else "")
    return await client.post(path, json={"role": role}, headers=by.headers)


async def test_revoked_operator_loses_the_role_before_its_token_expires(client: AppClient):
    administrator = await login_with_role(client, Role.ADMINISTRATOR)
    operator = await login_with_role(client, Role.OPERATOR)
    assert (await client.get("/v1/admin/terminals", headers=operator.headers)).status_code == 200
    r = await _grant(client, administrator, operator.account_id, Role.OPERATOR, revoke=True)
    assert r.status_code == 200 and r.json()["changed"] is True
    answer = await client.get("/v1/admin/terminals", headers=operator.headers)
    assert answer.status_code == 401 and answer.json()["code"] == "auth.session_ended"
    # Its refresh token is dead too, and a new login carries no operator role.
    r = await client.post("/v1/auth/refresh", json={"refresh_token": operator.refresh_token})
    assert r.status_code == 401
    again = await login(client, operator.phone)
    assert (await client.get("/v1/admin/terminals", headers=again.headers)).status_code == 403


async def test_role_revoked_in_the_database_is_refused_with_a_live_token(client: AppClient):
    """Even a change that reaches only the database (no session end) is seen: the guard reads roles, not tokens."""
    operator = await login_with_role(client, Role.OPERATOR)
    async with client.app.state.core.db.connection() as conn:
        await conn.execute(
            "DELETE FROM account_roles WHERE account_id = $1 AND role = 'operator'", operator.account_id
        )
    await client.app.state.core.roles.changed(operator.account_id)
    assert (await client.get("/v1/admin/terminals", headers=operator.headers)).status_code == 403


async def test_operator_cannot_grant_itself_a_role_again(client: AppClient):
    operator = await login_with_role(client, Role.OPERATOR)
    for role in (Role.OPERATOR, Role.DEVELOPER, Role.HEALTH_AUTHORITY):
        r = await _grant(client, operator, operator.account_id, role)
        assert (r.status_code, r.json()["code"]) == (403, "role.own_account"), role


async def test_operator_cannot_make_operators_or_health_authorities(client: AppClient):
    operator = await login_with_role(client, Role.OPERATOR)
    accomplice = await login(client)
    for role in (Role.OPERATOR, Role.HEALTH_AUTHORITY, Role.ADMINISTRATOR):
        r = await _grant(client, operator, accomplice.account_id, role)
        assert (r.status_code, r.json()["code"]) == (403, "role.not_allowed"), role
    peer = await login_with_role(client, Role.OPERATOR)
    r = await _grant(client, operator, peer.account_id, Role.OPERATOR, revoke=True)
    assert (r.status_code, r.json()["code"]) == (403, "role.not_allowed")
    # Everyday roles stay the operator's to grant.
    assert (await _grant(client, operator, accomplice.account_id, Role.DEVELOPER)).status_code == 200


async def test_administrator_grants_operators_but_not_administrators(client: AppClient):
    administrator = await login_with_role(client, Role.ADMINISTRATOR)
    newcomer = await login(client)
    r = await _grant(client, administrator, newcomer.account_id, Role.OPERATOR)
    assert r.status_code == 200 and r.json()["changed"] is True
    r = await _grant(client, administrator, newcomer.account_id, Role.ADMINISTRATOR)
    assert (r.status_code, r.json()["code"]) == (403, "role.not_allowed")
    r = await _grant(client, administrator, administrator.account_id, Role.HEALTH_AUTHORITY)
    assert (r.status_code, r.json()["code"]) == (403, "role.own_account")


async def test_health_authority_cannot_grant_roles(client: AppClient):
    authority = await login_with_role(client, Role.HEALTH_AUTHORITY)
    someone = await login(client)
    r = await _grant(client, authority, someone.account_id, Role.HEALTH_AUTHORITY)
    assert r.status_code == 403
