"""Where a terminal scans and which tap it is: `stop` and `tap` on online scans and offline records, stored with
the scan, a malformed stop refused with a stable code, and a code that boarded tapping off once more."""

from __future__ import annotations

import time
import uuid

import msgspec
from yima_sdk.terminal import ScanBatch, ScanRecord

from server.terminals.scans.outbox_repository import head
from tests.conftest import login_with_role
from tests.credentials.helpers import ankang_payload, register_terminal, terminal_token, verified_resident
from tests.onecard.helpers import fund, resident_with_card
from tests.onecard.test_devices_settlement import certify
from tests.terminals.test_batch import _record, _ride_holder, _upload


async def _scan(client, headers, payload, **where):
    r = await client.post(
        "/v1/scans",
        json={"payload": payload, "scanned_at": int(time.time() * 1000), **where},
        headers=headers,
    )
    return r


async def _stored(client, terminal_id):
    async with client.app.state.core.db.connection() as conn:
        rows = await conn.fetch(
            "SELECT result, reason, stop, tap FROM scans WHERE terminal_id = $1 ORDER BY received_at",
            terminal_id,
        )
    return [tuple(r) for r in rows]


async def test_online_scan_keeps_its_stop_and_a_boarding_code_taps_off_once(client):
    operator = await login_with_role(client, "operator")
    resident, _ = await verified_resident(client)
    bus, key = await register_terminal(client, operator, kind="bus")  # a payment scene: a code spends once
    headers = await terminal_token(client, bus, key)
    code = await ankang_payload(client, resident)
    old = await _scan(client, headers, code)  # an older terminal sends neither
    assert old.status_code == 200 and old.json()["result"] == "accept", old.text
    again = await _scan(client, headers, code, stop="people-square")
    assert again.json()["reason"] == "scan.replayed"
    off = await _scan(client, headers, code, stop="taiji-cave", tap="off")
    assert off.status_code == 200 and off.json()["result"] == "accept", off.text
    off_again = await _scan(client, headers, code, stop="taiji-cave", tap="off")
    assert off_again.json()["reason"] == "scan.replayed"
    assert await _stored(client, bus) == [
        ("accept", None, None, "on"),
        ("reject", "scan.replayed", "people-square", "on"),
        ("accept", None, "taiji-cave", "off"),
        ("reject", "scan.replayed", "taiji-cave", "off"),
    ]


async def test_a_malformed_stop_or_tap_is_a_clear_400_and_nothing_is_stored(client):
    operator = await login_with_role(client, "operator")
    resident, _ = await verified_resident(client)
    bus, key = await register_terminal(client, operator, kind="bus")
    headers = await terminal_token(client, bus, key)
    code = await ankang_payload(client, resident)
    for stop in ("", "人民广场", "a b", "x" * 65, "stop;drop"):
        r = await _scan(client, headers, code, stop=stop)
        assert r.status_code == 400 and r.json()["code"] == "scan.stop_invalid", (stop, r.text)
    r = await _scan(client, headers, code, tap="sideways")
    assert r.status_code == 400 and r.json()["code"] == "request.invalid" and "tap" in r.text
    assert await _stored(client, bus) == []


async def test_offline_records_carry_stop_and_tap_and_a_tap_off_names_its_rider(client):
    """A ride code boards (charged) and taps off (charged nothing) at another stop: both stored with their stop;
    the tap-off spends the code apart from the boarding, and its event for the scene's app names the rider
    although settlement never saw it."""
    operator = await login_with_role(client, "operator")
    resident = await resident_with_card(client)
    await fund(client, resident, 2000)
    holder, _ = await certify(client, resident)
    bus, key = await register_terminal(client, operator, kind="bus")
    headers = await terminal_token(client, bus, key)
    code = holder.ride_code(time.time())
    board = _record(code, amount=200) | {"stop": "bus-station"}
    off = _record(code, at=time.time() + 1) | {"stop": "shijie", "tap": "off"}
    off_twice = _record(code, at=time.time() + 2) | {"stop": "shijie", "tap": "off"}
    bad_stop = _record(holder.ride_code(time.time()), amount=200) | {"stop": "人民广场"}
    paid_off = _record(holder.ride_code(time.time()), amount=200) | {"tap": "off"}
    old = _record(holder.ride_code(time.time()), amount=200)  # an older terminal: neither field
    verdicts = await _upload(client, headers, [board, off, off_twice, bad_stop, paid_off, old])
    assert verdicts == [
        ("accepted", None),
        ("accepted", None),
        ("rejected", "scan.replayed"),
        ("rejected", "scan.stop_invalid"),
        ("rejected", "scan.amount_invalid"),
        ("accepted", None),
    ]
    async with client.app.state.core.db.connection() as conn:
        rows = await conn.fetch(
            "SELECT record_id, stop, tap, settlement FROM scans WHERE terminal_id = $1", bus
        )
        by_record = {r["record_id"]: (r["stop"], r["tap"], r["settlement"]) for r in rows}
        # a tap-off is charged nothing: settlement took only the two boardings
        charged = await conn.fetchval(
            "SELECT count(*) FROM onecard_offline_rides WHERE terminal_id = $1 AND status = 'settled'", bus
        )
    assert by_record[board["record_id"]] == ("bus-station", "on", "settled")
    assert by_record[off["record_id"]] == ("shijie", "off", None)
    assert by_record[old["record_id"]] == (None, "on", "settled")
    assert charged == 2


async def test_an_offline_tap_off_event_reaches_the_outbox_with_its_stop_and_rider(client):
    """The upload writes the scene app's event of an accepted tap-off to the outbox: its stop, its tap, and the
    rider (whose card the ride code's certificate belongs to) although nothing was settled."""
    operator = await login_with_role(client, "operator")
    resident, _ = await verified_resident(client)
    bus, _ = await register_terminal(client, operator, kind="bus")
    holder = await _ride_holder(client, resident.account_id)
    off = _record(holder.ride_code(time.time())) | {"stop": "shijie", "tap": "off"}
    scans = client.app.state.terminals.scans
    events = scans.events

    class _BoundApp:  # the platform's sink, with an app bound to the bus scene
        def __getattr__(self, name):
            return getattr(events, name)

        def bound_app(self, kind, scene):
            return "gov.test.bus"

    batch = ScanBatch(batch_id=str(uuid.uuid4()), records=[msgspec.convert(off, ScanRecord)])
    terminal = await client.app.state.terminals.registry.info(bus)
    policy = scans.policies.for_scene("bus", terminal.scene)
    result, _ = await scans.offline.upload(terminal, batch, policy, time.time(), _BoundApp())
    assert [r.status for r in result.results] == ["accepted"]
    async with client.app.state.core.db.connection() as conn:
        row = await head(conn, bus)
    assert row is not None and row.event is not None
    assert (row.event.stop, row.event.tap, row.event.account_id) == ("shijie", "off", resident.account_id)
