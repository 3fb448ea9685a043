"""The audit chain: records link by hash; the application role can only append."""

from __future__ import annotations

import asyncpg
import pytest

from server import audit
from tests.conftest import login, login_with_role


async def test_appended_records_verify(client):
    async with client.app.state.core.db.transaction() as conn:
        for i in range(3):
            await audit.append(
                conn, actor="test", action="thing.done", target=f"t:{i}", details={"n": i, "z": [1]}
            )
    async with client.app.state.core.db.connection() as conn:
        checked, broken = await audit.verify_chain(conn, client.app.state.core.derived_keys.audit_chain)
    assert checked >= 3
    assert broken is None


async def test_application_role_cannot_rewrite_history(client):
    await login_with_role(client, "operator")  # writes at least one audit record
    async with client.app.state.core.db.connection() as conn:
        assert await conn.fetchval("SELECT current_user") == "yima_app"
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE audit_log SET actor = 'someone else'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM audit_log")


async def test_checkpoints_are_served_append_only_and_verify_with_the_trust_root(client, settings):
    from server.audit.checkpoints import Checkpoint
    from server.audit.plugin import publish_checkpoint

    core = client.app.state.core
    first = await publish_checkpoint(core)
    assert first is not None
    assert await publish_checkpoint(core) is None  # the head did not move: nothing new to sign
    async with core.db.transaction() as conn:
        await audit.append(conn, actor="test", action="thing.done", target="t:next")
    second = await publish_checkpoint(core)
    assert second is not None and second.size > first.size

    r = await client.get("/v1/audit/checkpoints", params={"after": first.size - 1})
    assert r.status_code == 200, r.text
    served = [Checkpoint(**c) for c in r.json()]
    assert [c.size for c in served] == [first.size, second.size]
    roots = await client.app.state.credentials.trust.root_public_keys()
    assert all(c.verify(roots) for c in served)
    # Exported outside the database too: the node's file holds the same signed lines.
    exported = settings.resolved_audit_checkpoint_file.read_text().splitlines()
    assert len(exported) == 2


async def test_operators_write_a_signed_checkpoint_on_demand_that_covers_their_request(client, settings):
    from server.audit.checkpoints import Checkpoint

    resident = await login(client)
    r = await client.post("/v1/admin/audit/checkpoints", headers=resident.headers)
    assert (r.status_code, r.json()["code"]) == (403, "auth.forbidden")
    operator = await login_with_role(client, "operator")
    r = await client.post("/v1/admin/audit/checkpoints", headers=operator.headers)
    assert r.status_code == 201, r.text
    checkpoint = Checkpoint(**r.json())
    assert checkpoint.verify(await client.app.state.credentials.trust.root_public_keys())

    async with client.app.state.core.db.connection() as conn:
        request = await conn.fetchrow(
            "SELECT seq FROM audit_log WHERE actor = $1 AND action = 'audit.checkpoint_requested'",
            f"account:{operator.account_id}",
        )
    assert request is not None and request["seq"] <= checkpoint.size  # audited, and covered by what it signed
    served = (await client.get("/v1/audit/checkpoints", params={"after": checkpoint.size - 1})).json()
    assert Checkpoint(**served[0]) == checkpoint
    assert settings.resolved_audit_checkpoint_file.read_text().splitlines()[-1].startswith("{")
    again = await client.post("/v1/admin/audit/checkpoints", headers=operator.headers)
    assert Checkpoint(**again.json()).size > checkpoint.size  # each request moves the head it signs
