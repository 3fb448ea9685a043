"""An offline gate's own verdict (it decided the scan by its synced lists) travels with its record: stored with
the scan and passed to the app bound to the scene; records without it read as before."""

from __future__ import annotations

import time
import uuid

import msgspec
from yima_sdk.terminal import ScanBatch, ScanRecord

from server.terminals.scans.outbox_repository import head
from tests.conftest import login_with_role
from tests.credentials.helpers import ankang_payload, register_terminal, terminal_token, verified_resident
from tests.terminals.test_batch import _record, _upload


async def test_offline_records_keep_the_gates_verdict(client):
    operator = await login_with_role(client, "operator")
    resident, _ = await verified_resident(client)
    gate, key = await register_terminal(client, operator, kind="scenic")
    headers = await terminal_token(client, gate, key)
    refused = _record(await ankang_payload(client, resident)) | {
        "terminal_admitted": False,
        "terminal_reason": "list.no_entry",
    }
    admitted = _record(await ankang_payload(client, resident), at=time.time() + 1) | {
        "terminal_admitted": True
    }
    old = _record(await ankang_payload(client, resident), at=time.time() + 2)  # an older terminal
    assert await _upload(client, headers, [refused, admitted, old]) == [("accepted", None)] * 3
    async with client.app.state.core.db.connection() as conn:
        rows = await conn.fetch(
            "SELECT record_id, terminal_admitted, terminal_reason FROM scans WHERE terminal_id = $1", gate
        )
    stored = {r["record_id"]: (r["terminal_admitted"], r["terminal_reason"]) for r in rows}
    assert stored == {
        refused["record_id"]: (False, "list.no_entry"),
        admitted["record_id"]: (True, None),
        old["record_id"]: (None, None),
    }


async def test_the_gates_verdict_reaches_the_bound_apps_event(client):
    operator = await login_with_role(client, "operator")
    resident, _ = await verified_resident(client)
    gate, _ = await register_terminal(client, operator, kind="scenic")
    refused = _record(await ankang_payload(client, resident)) | {
        "terminal_admitted": False,
        "terminal_reason": "list.used_up",
    }
    scans = client.app.state.terminals.scans
    events = scans.events

    class _BoundApp:  # the platform's sink, with an app bound to the gate's scene
        def __getattr__(self, name):
            return getattr(events, name)

        def bound_app(self, kind, scene):
            return "gov.test.gates"

    batch = ScanBatch(batch_id=str(uuid.uuid4()), records=[msgspec.convert(refused, ScanRecord)])
    terminal = await client.app.state.terminals.registry.info(gate)
    policy = scans.policies.for_scene("scenic", terminal.scene)
    result, _ = await scans.offline.upload(terminal, batch, policy, time.time(), _BoundApp())
    assert [r.status for r in result.results] == ["accepted"]
    async with client.app.state.core.db.connection() as conn:
        row = await head(conn, gate)
    assert row is not None and row.event is not None
    assert (row.event.terminal_admitted, row.event.terminal_reason) == (False, "list.used_up")
    assert row.event.account_id == resident.account_id
