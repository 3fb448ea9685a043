"""`ctx.db` commits that cannot get through in time: the platform's deadline, through the gateway and a sandboxed
app, against a row lock held in the real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import msgspec
import pytest
from litestar import Litestar

from server.platform.plugin import PlatformPlugin
from tests.conftest import login
from tests.platform.conftest import Team, call, new_app_id, write_probe


@pytest.fixture
def app(app: Litestar) -> Litestar:
    # well inside the probe's call deadline (timeout_ms = 2000), so the app answers before the sandbox gives up
    plugin = app.plugins.get(PlatformPlugin)
    plugin.config = msgspec.structs.replace(plugin.config, db_commit_deadline_s=0.5)
    return app


async def test_a_commit_that_cannot_get_through_in_time_writes_nothing_and_may_be_retried(
    team: Team, tmp_path: Path, database_url: str
) -> None:
    """Another connection holds the row lock of the counter a booking needs: the commit waits out the platform's
    deadline (PlatformSettings.db_commit_deadline_s, short here), the resident gets `capability.failed` and
    neither the slot nor the booking is written; once the lock is gone, the same booking goes through."""
    folder = write_probe(tmp_path, new_app_id("dbdeadline"))
    app_id, _ = await team.ship(folder)
    assert team.client.app.state.platform.caps.db.commit_deadline_s == 0.5
    resident = await login(team.client)
    r = await call(team.client, resident, app_id, "POST", "/db/book?slots=5&n=1")
    assert (r.status_code, r.json()) == (201, {"slot": 1}), r.text

    holder = await asyncpg.connect(database_url)
    try:
        locked = holder.transaction()
        await locked.start()
        held = await holder.fetch(
            "SELECT value FROM miniapp_counters WHERE app_id = $1 AND key = 'db:slots' FOR UPDATE", app_id
        )
        assert [row["value"] for row in held] == [1]
        r = await call(team.client, resident, app_id, "POST", "/db/book?slots=5&n=2")
        assert (r.status_code, r.json()["code"]) == (503, "capability.failed"), r.text
        await locked.rollback()
    finally:
        await holder.close()

    r = await call(team.client, resident, app_id, "GET", "/db/bookings/2026-03-02")
    assert r.json() == {"count": 1, "taken": 1}  # nothing of the late commit
    r = await call(team.client, resident, app_id, "POST", "/db/book?slots=5&n=2")
    assert (r.status_code, r.json()) == (201, {"slot": 2}), r.text
    r = await call(team.client, resident, app_id, "GET", "/db/bookings/2026-03-02")
    assert r.json() == {"count": 2, "taken": 2}


async def test_an_update_of_a_document_locked_elsewhere_fails_in_time_and_changes_nothing(
    team: Team, tmp_path: Path, database_url: str
) -> None:
    folder = write_probe(tmp_path, new_app_id("dbdoclock"))
    app_id, _ = await team.ship(folder)
    resident = await login(team.client)
    value = {"collection": "bookings", "id": "b1", "value": {"day": "2026-03-04", "n": 1}}
    r = await call(team.client, resident, app_id, "POST", "/raw/db/insert", json=value)
    assert (r.status_code, r.json()) == (200, {"id": "b1", "version": 1}), r.text
    changed = {**value, "value": {"day": "2026-03-05", "n": 2}}

    holder = await asyncpg.connect(database_url)
    try:
        async with holder.transaction():
            held = await holder.fetch(
                "SELECT version FROM miniapp_records WHERE app_id = $1 AND doc_id = 'b1' FOR UPDATE", app_id
            )
            assert [row["version"] for row in held] == [1]
            r = await call(team.client, resident, app_id, "POST", "/raw/db/update", json=changed)
            assert (r.status_code, r.json()["code"]) == (503, "capability.failed"), r.text
    finally:
        await holder.close()

    r = await call(
        team.client, resident, app_id, "POST", "/raw/db/get", json={"collection": "bookings", "id": "b1"}
    )
    assert r.json() == {"id": "b1", "value": {"day": "2026-03-04", "n": 1}, "version": 1}
    r = await call(
        team.client,
        resident,
        app_id,
        "POST",
        "/raw/db/count",
        json={"collection": "bookings", "where": {"day": "2026-03-05"}},
    )
    assert r.json() == 0  # nor its index key
    r = await call(team.client, resident, app_id, "POST", "/raw/db/update", json=changed)
    assert (r.status_code, r.json()) == (200, 2), r.text
