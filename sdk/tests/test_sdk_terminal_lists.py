"""A gate on the terminal SDK, offline, by the lists its unit's app holds (simulator): it admits the holder of an
entry by their Ankang code and nobody else, once unless the entry re-enters, the group of a group entry, a pass by
its entry; a dropped entry is gone after the sync; what it holds survives a restart and never names anyone."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from yima_sdk.cron import COUNTY_TIME
from yima_sdk.manifest import parse_manifest
from yima_sdk.simulator import SimulatedPlatform
from yima_sdk.simulator._platform import CallInfo
from yima_sdk.terminal import Terminal, TerminalError

MANIFEST = 'id = "dev.example.gates"\nname = "Gates"\nversion = "1.0.0"\nentry = "app:app"\ncapabilities = ["terminals"]\n'
GATE = "spot:east"


class Gates:
    """The simulated platform of an app that holds a `gate` list, and one of its unit's terminals."""

    def __init__(self, tmp_path: Path) -> None:
        self.now = time.time()
        self.platform = SimulatedPlatform(parse_manifest(MANIFEST), clock=lambda: self.now)
        for name in ("alice", "carol"):
            self.platform.use(self.platform.user_id(name))
        self.path = tmp_path / "gate.sqlite"
        self.terminal = self.open()
        self.terminal.load_trust_list(self.platform.credentials.trust_list_envelope)

    def open(self) -> Terminal:
        roots = self.platform.credentials.root_public_keys
        return Terminal(
            root_public_keys=roots, db_path=str(self.path), clock=lambda: self.now, clock_source="ntp"
        )

    async def call(self, operation: str, user: str | None = None, **kwargs: Any) -> Any:
        call = CallInfo(app_id="dev.example.gates", version="1.0.0", call_id=1, user_id=None)
        if user is not None:
            kwargs["user_id"] = self.platform.user_id(user)
        return await self.platform.handle(call, "terminals", operation, [], kwargs)

    async def hold(self, key: str, value: dict[str, Any], user: str | None = None, **kwargs: Any) -> Any:
        until = int(self.now) + 8 * 3600
        return await self.call(
            "hold", user, list="gate", unit=GATE, key=key, value=value, expires_at=until, **kwargs
        )

    def sync(self, after: int = 0) -> int:
        return self.terminal.load_lists(self.platform.terminal_lists(GATE, after))

    def code(self, name: str) -> str:
        return self.platform.ankang_code(name)


@pytest.fixture
def gates(tmp_path: Path) -> Any:
    made = Gates(tmp_path)
    yield made
    made.terminal.close()


async def test_a_gate_admits_the_holder_once_a_group_at_once_and_refuses_the_rest(gates: Gates) -> None:
    await gates.hold("ticket.1", {"people": 3}, user="alice")
    await gates.hold("ticket.2", {"people": 1, "reentry": True}, user="carol")
    assert gates.sync() == 2
    first = gates.terminal.admit(gates.code("alice"), "gate")
    assert (first.admit, first.people, first.reason) == (True, 3, None)
    assert first.entry is not None and (first.entry.key, first.entry.uses) == ("ticket.1", 1)
    assert first.decision.result == "accept" and gates.terminal.pending_count() == 1  # recorded for upload

    gates.now += 120  # a new code of hers, a minute later: her entry is used and does not re-enter
    again = gates.terminal.admit(gates.code("alice"), "gate")
    assert (again.admit, again.reason, again.people) == (False, "list.used_up", 0)
    nobody = gates.terminal.admit(gates.code("grandpa"), "gate")
    assert (nobody.admit, nobody.reason, nobody.entry) == (False, "list.no_entry", None)
    for _ in range(2):  # carol's entry re-enters
        gates.now += 61
        entered = gates.terminal.admit(gates.code("carol"), "gate")
        assert entered.admit is True
    # the same code read again (within the replay window): the gate stays shut, her entry is not used again
    repeated = gates.terminal.admit(gates.code("carol"), "gate")
    assert (repeated.admit, repeated.people, repeated.reason) == (False, 0, "list.repeated")
    assert repeated.entry == entered.entry and entered.entry is not None and entered.entry.uses == 2
    assert gates.terminal.admit(gates.code("carol"), "other").reason == "list.repeated"
    gates.now += 61
    assert gates.terminal.admit(gates.code("carol"), "other").reason == "list.no_entry"
    assert gates.terminal.pending_count() == 6  # every scan is recorded, admitted or not (a repeat is not)


async def test_a_pass_finds_its_entry_and_a_dropped_or_expired_entry_is_refused(gates: Gates) -> None:
    issued = await gates.platform.handle(
        CallInfo(app_id="dev.example.gates", version="1.0.0", call_id=1, user_id=gates.platform.user_id("alice")),
        "credentials", "issue_pass", [], {"kind": "ticket", "data": {"n": 7}, "valid_until": int(gates.now) + 86400},
    )  # fmt: skip
    await gates.hold("ticket.7", {"people": 2}, pass_id=issued.id)
    await gates.hold("ticket.8", {}, user="carol")
    gates.sync()
    assert gates.terminal.admit(issued.payload, "gate").people == 2
    assert await gates.call("drop", list="gate", unit=GATE, key="ticket.8") is True
    cursor = msgspec.json.decode(gates.platform.terminal_lists(GATE))["cursor"]
    changes = msgspec.json.decode(gates.platform.terminal_lists(GATE, cursor - 1))["entries"]
    assert changes == [{"list": "gate", "key": "ticket.8", "seq": cursor, "dropped": True}]
    gates.sync(cursor - 1)
    assert gates.terminal.admit(gates.code("carol"), "gate").reason == "list.no_entry"

    # restarted, without any connection: what it holds and what it admitted are in its file
    gates.terminal.close()
    gates.terminal = gates.open()
    again = gates.terminal.admit(issued.payload, "gate")
    assert (again.admit, again.reason) == (False, "list.used_up")
    gates.now += 9 * 3600  # past the entries' expiry
    await gates.hold("ticket.9", {}, user="alice")
    gates.sync(cursor)
    assert gates.terminal.admit(issued.payload, "gate").reason == "list.no_entry"
    assert gates.terminal.admit(gates.code("alice"), "gate").admit is True


async def test_what_a_gate_holds_names_no_one_and_a_malformed_answer_changes_nothing(gates: Gates) -> None:
    await gates.hold("ticket.1", {"people": 1}, user="alice")
    body = gates.platform.terminal_lists(GATE)
    alice = gates.platform.user_id("alice")
    assert alice.encode() not in body and b"alice" not in body
    gates.sync()
    assert alice.encode() not in gates.path.read_bytes()
    with pytest.raises(TerminalError) as bad:
        gates.terminal.load_lists(b'{"entries": 1}')
    assert bad.value.code == "terminal.bad_lists"
    assert gates.terminal.admit(gates.code("alice"), "gate").admit is True


async def test_a_first_entry_after_its_entry_hours_is_refused(gates: Gates) -> None:
    await gates.hold("ticket.1", {"enter_until": int(gates.now) + 60}, user="alice")
    await gates.hold("ticket.2", {"enter_until": int(gates.now) + 600}, user="carol")
    gates.sync()
    gates.now += 120
    late = gates.terminal.admit(gates.code("alice"), "gate")
    assert (late.admit, late.reason) == (False, "list.closed")
    assert gates.terminal.admit(gates.code("carol"), "gate").admit is True


class _UnitLists:
    """A terminal's connection for its lists only: the simulator's answers for the unit it is registered for."""

    def __init__(self, platform: SimulatedPlatform, unit: str) -> None:
        self.platform = platform
        self.unit = unit

    def fetch_lists(self, after: int) -> bytes:
        return self.platform.terminal_lists(self.unit, after)


async def test_a_gate_moved_to_another_unit_holds_all_of_its_entries_and_none_of_its_old_uses(
    gates: Gates, tmp_path: Path
) -> None:
    await gates.hold("ticket.1", {}, user="alice")
    await gates.hold("ticket.2", {}, user="carol")
    lists = _UnitLists(gates.platform, GATE)
    roots = gates.platform.credentials.root_public_keys
    terminal = Terminal(
        root_public_keys=roots, db_path=str(tmp_path / "moved.sqlite"), clock=lambda: gates.now,
        clock_source="ntp", transport=lists,  # type: ignore[arg-type]
    )  # fmt: skip
    try:
        terminal.load_trust_list(gates.platform.credentials.trust_list_envelope)
        assert terminal.sync_lists() == 2
        assert terminal.admit(gates.code("alice"), "gate").admit is True

        # the west gate's unit numbers its own changes: its first ones are at or below the east cursor
        for n, name in enumerate(("alice", "carol", "grandpa")):
            user = name if name != "grandpa" else None
            await gates.call(
                "hold", user, list="gate", unit="spot:west", key=f"ticket.{n + 1}", value={},
                expires_at=int(gates.now) + 3600,
            )  # fmt: skip
        lists.unit = "spot:west"
        gates.now += 120
        assert terminal.sync_lists() == 3
        west = terminal.admit(gates.code("alice"), "gate")  # her east ticket's key, its own uses
        assert (west.admit, west.reason) == (True, None)
        assert terminal.admit(gates.code("carol"), "gate").admit is True
    finally:
        terminal.close()


async def test_a_gate_admits_by_the_ticket_open_now_and_a_pass_re_enters_only_the_day_it_first_entered(
    gates: Gates,
) -> None:
    county = dt.datetime.fromtimestamp(gates.now, COUNTY_TIME)
    gates.now = county.replace(hour=12, minute=55, second=0, microsecond=0).timestamp()
    morning = int(gates.now) - 3600  # her 09:00-12:00 ticket, missed; then her 13:00-17:00 one
    await gates.hold("ticket.1", {"enter_until": morning}, user="alice", valid_from=morning - 4 * 3600)
    await gates.hold("ticket.2", {"enter_until": int(gates.now) + 4 * 3600}, user="alice")
    until = int(gates.now) + 3 * 86400  # carol's route pass of three days, at a spot that re-admits
    await gates.call(
        "hold", "carol", list="gate", unit=GATE, key="route.1", value={"reentry": True}, expires_at=until
    )
    gates.sync()
    gates.now += 600
    entered = gates.terminal.admit(gates.code("alice"), "gate")
    assert (entered.admit, entered.entry and entered.entry.key) == (True, "ticket.2")
    gates.now += 120
    again = gates.terminal.admit(gates.code("alice"), "gate")
    assert (again.admit, again.reason) == (False, "list.used_up")  # her one entry, not her morning's "closed"

    assert gates.terminal.admit(gates.code("carol"), "gate").admit is True
    gates.now += 3600
    assert gates.terminal.admit(gates.code("carol"), "gate").admit is True  # again the same day
    gates.now += 86400  # the next day: her pass visits this spot once
    refused = gates.terminal.admit(gates.code("carol"), "gate")
    assert (refused.admit, refused.reason) == (False, "list.used_up")


class _Uploads:
    """A server's batch endpoint that accepts every record and keeps what it was sent."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def upload_batch(self, body: bytes) -> bytes:
        batch = msgspec.json.decode(body)
        self.records.extend(batch["records"])
        results = [
            {"record_id": r["record_id"], "status": "accepted", "reason": None} for r in batch["records"]
        ]
        return msgspec.json.encode({"batch_id": batch["batch_id"], "results": results})


async def test_the_gates_verdict_is_kept_with_its_record_and_uploaded(gates: Gates) -> None:
    from yima_sdk.terminal._upload import upload_records

    await gates.hold("ticket.1", {"people": 1}, user="alice")
    assert gates.sync() == 1
    plain = gates.terminal.scan(gates.code("carol"))  # not a gate's scan: no verdict
    admitted = gates.terminal.admit(gates.code("alice"), "gate")
    refused = gates.terminal.admit(gates.code("grandpa"), "gate")
    assert (admitted.admit, refused.admit, refused.reason) == (True, False, "list.no_entry")
    gates.terminal.close()
    gates.terminal = gates.open()  # the verdicts are in the file: they survive a restart before the upload
    server = _Uploads()
    assert upload_records(gates.terminal._store, server, 10) == 3  # type: ignore[arg-type]
    sent = {r["record_id"]: r for r in server.records}
    assert (sent[admitted.decision.record_id]["terminal_admitted"], sent[admitted.decision.record_id].get(
        "terminal_reason")) == (True, None)  # fmt: skip
    assert (sent[refused.decision.record_id]["terminal_admitted"],
            sent[refused.decision.record_id]["terminal_reason"]) == (False, "list.no_entry")  # fmt: skip
    # a scan no gate decided says nothing: an older server reads it as before
    assert "terminal_admitted" not in sent[plain.record_id] and "terminal_reason" not in sent[plain.record_id]
