"""The storage key quota holds for every kind of key: bounded counters count like documents."""

from __future__ import annotations

from pathlib import Path

import pytest
from yima_sdk.errors import QuotaExceeded

from sandbox.capabilities import CallInfo
from tests.platform.conftest import Team, new_app_id, write_probe


async def test_counters_count_against_the_key_quota(team: Team, tmp_path: Path) -> None:
    app_id, version = await team.ship(write_probe(tmp_path, new_app_id()))
    r = await team.admin("PUT", f"/{app_id}/quotas", json={"storage_max_keys": 3})
    assert r.status_code == 200, r.text
    caps = team.client.app.state.platform.caps
    info = CallInfo(app_id=app_id, version=version, call_id=1, user_id=None)

    async def storage(op: str, **kwargs: object) -> object:
        return await caps.handle(info, "storage", op, [], kwargs)

    assert await storage("put", key="doc-1", value={"n": 1}) == 1
    assert await storage("counter_add", name="seats-1") == 1
    assert await storage("counter_add", name="seats-2") == 1
    # the quota (3 keys) is used up by one document and two counters: a fourth key of either kind is refused
    with pytest.raises(QuotaExceeded):
        await storage("counter_add", name="seats-3")
    with pytest.raises(QuotaExceeded):
        await storage("put", key="doc-2", value={"n": 2})
    assert await storage("counter_get", name="seats-3") == 0  # the refused counter was not created
    # existing keys keep working
    assert await storage("counter_add", name="seats-1", delta=2) == 3
    assert await storage("put", key="doc-1", value={"n": 2}) == 2
