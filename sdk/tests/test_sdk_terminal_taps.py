"""The terminal SDK's stops and taps: kept with each record and uploaded with it, checked before anything is
recorded, a code that boarded tapping off once more, and records from before stops uploading as they were."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import msgspec
import pytest
from sdk_world import World
from test_sdk_codes import ankang
from test_sdk_terminal import Clock, FakeServer, open_terminal
from yima_sdk.terminal import Terminal


@pytest.fixture
def setup(world: World, tmp_path: Path) -> tuple[Terminal, FakeServer, Clock, Path]:
    server = FakeServer(world.envelope(), world.root)
    clock = Clock()
    db = tmp_path / "terminal.sqlite"
    terminal = open_terminal(world, db, clock, server)
    terminal.refresh()
    return terminal, server, clock, db


def test_records_keep_their_stop_and_tap_through_the_upload(
    world: World, setup: tuple[Terminal, FakeServer, Clock, Path]
) -> None:
    terminal, server, clock, db = setup
    holder = world.holder()
    code = holder.ride_code(clock.now)
    board = terminal.scan(code, amount_fen=400, stop="bus-station")
    clock.now += 20
    # The same ride code shown at the rear door: a tap-off, not a replay of the boarding; read again at once, the
    # same tap-off; shown again later, a replay.
    off = terminal.scan(code, stop="shijie", tap="off")
    repeat = terminal.scan(code, stop="shijie", tap="off")
    clock.now += 10
    again = terminal.scan(code, stop="shijie", tap="off")
    plain = terminal.scan(ankang(world, issued_at=int(clock.now)))
    assert (board.result, off.result, off.repeated) == ("accept", "accept", False)
    assert (repeat.record_id, repeat.repeated) == (off.record_id, True)
    assert (again.result, again.reason) == ("reject", "credential.replayed")
    # A boarding that says neither keeps the shorter row of files from before stops.
    with closing(sqlite3.connect(db)) as other:
        rows = [
            r
            for (blob,) in other.execute("SELECT records FROM scan_group")
            for r in msgspec.msgpack.decode(blob)
        ]
    assert [len(r) for r in rows] == [7, 7, 7, 5]
    assert terminal.upload_pending() == 4
    assert again.record_id in server.received  # the refused one goes up too, as every record
    sent = server.received
    assert (sent[board.record_id].get("stop"), sent[board.record_id].get("tap", "on")) == (
        "bus-station",
        "on",
    )
    assert (sent[off.record_id]["stop"], sent[off.record_id]["tap"], sent[off.record_id]["amount_fen"]) == (
        "shijie",
        "off",
        0,
    )
    # What an older server reads: neither field on a record that says neither (left out of the JSON).
    assert "stop" not in sent[plain.record_id] or sent[plain.record_id]["stop"] is None


def test_the_wire_leaves_out_stop_and_tap_when_a_scan_says_neither(
    world: World, setup: tuple[Terminal, FakeServer, Clock, Path]
) -> None:
    terminal, server, clock, _ = setup
    sent: list[bytes] = []
    upload = server.upload_batch

    def keep(body: bytes) -> bytes:
        sent.append(body)
        return upload(body)

    server.upload_batch = keep  # type: ignore[method-assign]
    terminal.scan(ankang(world, issued_at=int(clock.now)))
    terminal.upload_pending()
    record = msgspec.json.decode(sent[0])["records"][0]
    assert "stop" not in record and "tap" not in record


def test_a_bad_stop_a_bad_tap_or_a_charged_tap_off_is_refused_before_anything_is_recorded(
    world: World, setup: tuple[Terminal, FakeServer, Clock, Path]
) -> None:
    terminal, _, clock, _ = setup
    code = world.holder().ride_code(clock.now)
    for stop in ("", "人民广场", "a b", "x" * 65):
        with pytest.raises(ValueError, match="stop"):
            terminal.scan(code, amount_fen=200, stop=stop)
    with pytest.raises(ValueError, match="tap"):
        terminal.scan(code, amount_fen=200, tap="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="charges nothing"):
        terminal.scan_many([(code, 200)], stop="shijie", tap="off")
    assert terminal.pending_count() == 0
    # The code was not spent by any of them.
    assert terminal.scan(code, amount_fen=200, stop="bus-station").result == "accept"
