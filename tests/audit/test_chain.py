"""The audit chain: records link by hash; the application role can only append."""

from __future__ import annotations

import asyncpg
import pytest

from server import audit
from tests.conftest import login_with_role


async def test_appended_records_verify(client):
    async with client.app.state.core.db.transaction() as conn:
        for i in range(3):
            await audit.append(
                conn, actor="test", action="thing.done", target=f"t:{i}", details={"n": i, "z": [1]}
            )
    async with client.app.state.core.db.connection() as conn:
        checked, broken = await audit.verify_chain(conn)
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
