"""The terminal SDK offline: trust list refresh, verdicts, replay handling, durability, resumable upload."""

from __future__ import annotations

import sqlite3
import tempfile
import uuid
from contextlib import closing
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sdk_world import GUANGDE, LANGXI, NOW, World, raw_public
from test_sdk_codes import ankang
from yima_sdk.codes import Verifier
from yima_sdk.passes import PassClaims, seal_pass
from yima_sdk.terminal import (
    ScanBatch,
    ScanBatchResult,
    ScanDecision,
    ScanRecordResult,
    Terminal,
    TransportError,
    sign_server_time,
)
from yima_sdk.trust import TrustEntry, TrustListError, encode_revocation_delta, pass_ref, trust_list_etag


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


class FakeServer:
    """A test double of the network: trust list, revocations, batch upload, and a line that can be cut."""

    def __init__(self, envelope: bytes, root: Ed25519PrivateKey) -> None:
        self.envelope = envelope
        self.root = root
        self.clock_ahead_ms = 0
        """How far the server's clock is ahead of the terminal's (the terminal sends its own in each request)."""
        self.terminal_times: list[int] = []
        self.revoked: dict[int, list[tuple[int, str, bytes]]] = {}
        self.received: dict[str, dict[str, object]] = {}
        self.cut_after_batches: int | None = None
        self.drop_answer = False
        self.batches = 0
        self.online = True

    def fetch_trust_list(self, etag: str | None) -> bytes | None:
        if not self.online:
            raise TransportError("offline")
        return None if etag == trust_list_etag(self.envelope) else self.envelope

    def fetch_lists(self, after: int) -> bytes:
        return b'{"app_id":null,"unit":null,"cursor":0,"more":false,"period_s":60}'  # no unit, no lists

    def fetch_revocations(self, issuer: int, since: int) -> bytes:
        entries = [e for e in self.revoked.get(issuer, []) if e[0] > since]
        version = max([since] + [e[0] for e in entries])
        return encode_revocation_delta(issuer, since, version, entries)  # type: ignore[arg-type]

    def fetch_server_time(self, nonce: str, terminal_time_ms: int) -> bytes:
        if not self.online:
            raise TransportError("offline")
        self.terminal_times.append(terminal_time_ms)
        return sign_server_time(self.root, "root-2026", terminal_time_ms + self.clock_ahead_ms, nonce)

    def upload_batch(self, body: bytes) -> bytes:
        if not self.online or (self.cut_after_batches is not None and self.batches >= self.cut_after_batches):
            raise TransportError("connection reset")
        # Decoded with the SDK's own wire type, as the server does: the shape is checked, not assumed.
        batch = msgspec.json.decode(body, type=ScanBatch)
        results = []
        for record in batch.records:
            status = "duplicate" if record.record_id in self.received else "accepted"
            self.received[record.record_id] = msgspec.to_builtins(record)
            results.append(ScanRecordResult(record_id=record.record_id, status=status, reason=None))
        self.batches += 1
        if self.drop_answer:
            # The server stored the batch, but the answer is lost on the way back.
            raise TransportError("connection reset while reading the answer")
        return msgspec.json.encode(ScanBatchResult(batch_id=batch.batch_id, results=results))


def stored_record_ids(db: Path) -> list[str]:
    """The record ids in the terminal's file, read by another connection: what a power cut would leave."""
    with closing(sqlite3.connect(db)) as other:
        groups = other.execute("SELECT records FROM scan_group ORDER BY seq").fetchall()
    return [record[0] for (blob,) in groups for record in msgspec.msgpack.decode(blob)]


def open_terminal(world: World, db: Path, clock: Clock, server: FakeServer) -> Terminal:
    """The terminal of `setup` on its file: first opened there, or started again (a restart, a power cut)."""
    return Terminal(
        root_public_keys=world.roots,
        db_path=str(db),
        clock=clock,
        clock_source="gnss",
        transport=server,
        replay_window_s=5,
        upload_batch_size=3,
    )


@pytest.fixture
def setup(world: World, tmp_path: Path) -> tuple[Terminal, FakeServer, Clock, Path]:
    server = FakeServer(world.envelope(), world.root)
    clock = Clock()
    db = tmp_path / "terminal.sqlite"
    terminal = open_terminal(world, db, clock, server)
    terminal.refresh()
    return terminal, server, clock, db


def test_offline_scans_are_decided_and_recorded(
    world: World, setup: tuple[Terminal, FakeServer, Clock, Path]
) -> None:
    terminal, server, clock, _ = setup
    server.online = False
    ok = terminal.scan(ankang(world, colour="yellow"))
    assert (ok.result, ok.reason, ok.code and ok.code.colour) == ("accept", None, "yellow")
    clock.now += 200
    late = terminal.scan(ankang(world))
    assert (late.result, late.reason) == ("reject", "credential.expired")
    assert terminal.scan("not a code").reason == "credential.malformed"
    assert terminal.pending_count() == 3
    with pytest.raises(TransportError):
        terminal.refresh()
    with pytest.raises(TransportError):
        terminal.upload_pending()
    assert terminal.pending_count() == 3


def test_repeat_within_window_answers_the_earlier_decision(
    world: World, setup: tuple[Terminal, FakeServer, Clock, Path]
) -> None:
    terminal, _, clock, _ = setup
    payload = ankang(world)
    first = terminal.scan(payload)
    clock.now += 2
    again = terminal.scan(payload)
    assert (again.record_id, again.result, again.repeated) == (first.record_id, "accept", True)
    assert terminal.pending_count() == 1
    clock.now += 10
    later = terminal.scan(payload)
    assert later.record_id != first.record_id and not later.repeated
    # In one group commit, the second read of a code is a repeat too.
    batch = terminal.scan_many([(ankang(world, issued_at=NOW + 1), 0)] * 2)
    assert batch[1].record_id == batch[0].record_id and batch[1].repeated


def test_ride_codes_repeats_and_offline_amount(
    world: World, setup: tuple[Terminal, FakeServer, Clock, Path]
) -> None:
    terminal, _, clock, db = setup
    holder = world.holder(max_amount_fen=500)
    first = holder.ride_code(clock.now)
    assert terminal.scan(first, amount_fen=200).result == "accept"
    clock.now += 30
    shown_again = terminal.scan(first, amount_fen=200)
    assert (shown_again.result, shown_again.reason) == ("reject", "credential.replayed")
    assert terminal.scan(holder.ride_code(clock.now), amount_fen=300).result == "accept"
    over = terminal.scan(holder.ride_code(clock.now), amount_fen=1)
    assert (over.result, over.reason) == ("reject", "credential.offline_limit_exceeded")
    terminal.close()
    # The spent amount survives a restart: it is written in the same transaction as the records.
    reopened = Terminal(root_public_keys=world.roots, db_path=str(db), clock=clock, clock_source="rtc")
    assert (
        reopened.scan(holder.ride_code(clock.now), amount_fen=1).reason == "credential.offline_limit_exceeded"
    )


def test_revocations_are_fetched_applied_and_kept(
    world: World, setup: tuple[Terminal, FakeServer, Clock, Path]
) -> None:
    terminal, server, clock, db = setup
    holder = world.holder()
    cert = holder.certificate
    assert cert is not None
    server.revoked[GUANGDE] = [(1, "subject", b"\x05" * 16), (2, "device_certificate", cert.serial)]
    terminal.refresh()
    assert terminal.revocations.version(GUANGDE) == 2
    assert terminal.revocations.version(LANGXI) == 0
    assert terminal.scan(ankang(world, subject_ref=b"\x05" * 16)).reason == "credential.revoked"
    assert terminal.scan(holder.ride_code(clock.now)).reason == "credential.revoked"
    server.revoked[GUANGDE].append((3, "subject", b"\x06" * 16))
    terminal.refresh()  # asks since=2 and gets only version 3
    terminal.close()
    server.online = False
    reopened = Terminal(root_public_keys=world.roots, db_path=str(db), clock=clock, clock_source="rtc")
    assert reopened.revocations.version(GUANGDE) == 3
    assert reopened.scan(ankang(world, subject_ref=b"\x06" * 16)).reason == "credential.revoked"


def test_a_revoked_pass_is_refused_offline_after_a_refresh(world: World, tmp_path: Path) -> None:
    """A cancelled ticket: its app revoked the pass, the revocation list carries the pass number, and the gate,
    offline after its refresh (and after a restart), refuses the pass while another pass still enters."""
    pass_key, kid = Ed25519PrivateKey.generate(), b"\x00\x00\x00\x09"
    entries = [
        *world.entries(),
        TrustEntry(
            issuer=GUANGDE,
            key_id=kid,
            alg=1,
            public_key=raw_public(pass_key),
            credential_types=frozenset({"app_pass"}),
            not_before=NOW - 86400,
            not_after=NOW + 86400,
        ),
    ]
    server = FakeServer(world.envelope(entries=entries), world.root)
    clock = Clock()
    db = tmp_path / "gate.sqlite"
    gate = open_terminal(world, db, clock, server)

    def ticket(number: int) -> str:
        claims = PassClaims(
            p=number, a="gov.guangde.tourism", k="ticket", s=None, d={}, exp=NOW + 3600, kid=kid.hex()
        )
        return seal_pass(claims, pass_key)

    gate.refresh()
    assert gate.scan(ticket(41)).result == "accept"
    server.revoked[GUANGDE] = [(1, "app_pass", pass_ref(41))]
    gate.refresh()
    server.online = False
    clock.now += 10  # past the replay window of the first scan
    refused = gate.scan(ticket(41))
    assert (refused.result, refused.reason) == ("reject", "credential.revoked")
    assert gate.scan(ticket(42)).result == "accept"
    gate.close()
    reopened = open_terminal(world, db, clock, server)
    clock.now += 10
    assert reopened.scan(ticket(41)).reason == "credential.revoked"
    assert reopened.revocations.pass_revoked(GUANGDE, 41)
    assert not reopened.revocations.pass_revoked(LANGXI, 41)  # a pass number counts for its issuer only


def test_a_delta_with_a_kind_this_sdk_does_not_know_still_revokes_the_known_entries(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A newer server's list carries a kind this SDK does not know, between known entries: the update is applied,
    not refused (before, one such entry made every later refresh fail, so nothing revoked after it was refused
    offline). The unknown entry is kept aside, logged by its kind only, and stored with the rest."""
    pass_key, kid = Ed25519PrivateKey.generate(), b"\x00\x00\x00\x09"
    entries = [
        *world.entries(),
        TrustEntry(GUANGDE, kid, 1, raw_public(pass_key), frozenset({"app_pass"}), NOW - 86400, NOW + 86400),
    ]
    server = FakeServer(world.envelope(entries=entries), world.root)
    clock = Clock()
    db = tmp_path / "gate.sqlite"
    gate = open_terminal(world, db, clock, server)

    def ticket(number: int) -> str:
        claims = PassClaims(
            p=number, a="gov.guangde.tourism", k="ticket", s=None, d={}, exp=NOW + 3600, kid=kid.hex()
        )
        return seal_pass(claims, pass_key)

    lost, kept = b"\x05" * 16, b"\x06" * 16
    future_ref = b"\x07" * 12  # a reference whose meaning only a newer SDK knows
    server.revoked[GUANGDE] = [
        (1, "subject", lost),
        (2, "door_plate_v2", future_ref),
        (3, "app_pass", pass_ref(41)),
    ]
    with caplog.at_level("WARNING", logger="yima_sdk.terminal"):
        gate.refresh()
    assert gate.revocations.version(GUANGDE) == 3
    assert gate.revocations.unknown_kinds() == {"door_plate_v2": 1}
    assert [r.getMessage() for r in caplog.records if "door_plate_v2 x1" in r.getMessage()]
    assert future_ref.hex() not in caplog.text and "Bwc" not in caplog.text  # no reference, raw or base64url
    server.revoked[GUANGDE].append((4, "subject", kept))
    gate.refresh()  # the next delta starts after the unknown entry's version: no gap
    server.online = False
    clock.now += 10
    assert gate.scan(ankang(world, subject_ref=lost)).reason == "credential.revoked"
    assert gate.scan(ankang(world, subject_ref=kept)).reason == "credential.revoked"
    assert gate.scan(ticket(41)).reason == "credential.revoked"
    assert gate.scan(ankang(world, subject_ref=b"\x08" * 16)).result == "accept"
    assert gate.scan(ticket(42)).result == "accept"
    gate.close()
    reopened = open_terminal(world, db, clock, server)
    assert reopened.revocations.version(GUANGDE) == 4
    assert reopened.revocations.unknown_kinds(GUANGDE) == {"door_plate_v2": 1}
    assert ("door_plate_v2", future_ref) in reopened.revocations.entries(GUANGDE)
    clock.now += 10
    assert reopened.scan(ticket(41)).reason == "credential.revoked"
    reopened.close()


def test_a_pass_verifies_only_with_a_pass_key_of_the_pass_issuer(world: World, tmp_path: Path) -> None:
    """A pass names its key but no issuer: a partner county's `app_pass` key, under another key id or under ours,
    never verifies one of our apps' passes; with keys of two issuers and no `pass_issuer` named, none is guessed."""
    ours, partner = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    kid, other_kid = b"\x00\x00\x00\x09", b"\x00\x00\x00\x0a"

    def pass_entry(issuer: int, key: Ed25519PrivateKey, key_id: bytes) -> TrustEntry:
        return TrustEntry(
            issuer, key_id, 1, raw_public(key), frozenset({"app_pass"}), NOW - 86400, NOW + 86400
        )

    def ticket(key: Ed25519PrivateKey, key_id: bytes) -> str:
        claims = PassClaims(
            p=5, a="gov.guangde.tourism", k="ticket", s=None, d={}, exp=NOW + 3600, kid=key_id.hex()
        )
        return seal_pass(claims, key)

    def reasons(entries: list[TrustEntry], pass_issuer: int | None) -> list[str | None]:
        gate = Terminal(
            root_public_keys=world.roots,
            db_path=str(tmp_path / f"{uuid.uuid4().hex}.sqlite"),
            clock=Clock(),
            clock_source="ntp",
            pass_issuer=pass_issuer,
        )
        gate.load_trust_list(world.envelope(entries=[*world.entries(), *entries]))
        payloads = (ticket(ours, kid), ticket(partner, other_kid), ticket(partner, kid))
        answers = [gate.scan(payload).reason for payload in payloads]
        gate.close()
        return answers

    unknown, bad = "credential.unknown_key", "credential.bad_signature"
    # the partner's key under another id, or under our key's id (it used to stand for ours: forgeries in, ours out)
    assert reasons([pass_entry(GUANGDE, ours, kid), pass_entry(LANGXI, partner, other_kid)], GUANGDE) == [
        None,
        unknown,
        bad,
    ]
    assert reasons([pass_entry(GUANGDE, ours, kid), pass_entry(LANGXI, partner, kid)], GUANGDE) == [
        None,
        unknown,
        bad,
    ]
    # not named: the one issuer with pass keys; two of them: no pass is accepted
    assert reasons([pass_entry(GUANGDE, ours, kid)], None) == [None, unknown, bad]
    assert (
        reasons([pass_entry(GUANGDE, ours, kid), pass_entry(LANGXI, partner, other_kid)], None)
        == [unknown] * 3
    )


def test_trust_list_rollback_is_refused_and_the_newer_list_kept(
    world: World, setup: tuple[Terminal, FakeServer, Clock, Path]
) -> None:
    terminal, server, _, db = setup
    server.envelope = world.envelope(version=3)
    terminal.refresh()
    assert terminal.trust_list is not None and terminal.trust_list.version == 3
    server.envelope = world.envelope(version=2)
    with pytest.raises(TrustListError) as info:
        terminal.refresh()
    assert info.value.code == "trust_list.rollback"
    terminal.close()
    reopened = Terminal(root_public_keys=world.roots, db_path=str(db), clock=Clock(), clock_source="ntp")
    assert reopened.trust_list is not None and reopened.trust_list.version == 3


def test_upload_resumes_after_a_cut_connection_and_records_survive_reopen(
    world: World, setup: tuple[Terminal, FakeServer, Clock, Path]
) -> None:
    terminal, server, clock, db = setup
    server.online = False
    decisions = [terminal.scan(ankang(world, issued_at=NOW + i)) for i in range(7)]
    # Pending records are on disk: another connection sees them before any upload.
    assert stored_record_ids(db) == [d.record_id for d in decisions]
    server.online = True
    server.cut_after_batches = 1  # the line drops after the first batch of 3
    with pytest.raises(TransportError):
        terminal.upload_pending()
    assert terminal.pending_count() == 4
    terminal.close()

    reopened = open_terminal(world, db, clock, server)
    assert reopened.pending_count() == 4
    server.cut_after_batches = None
    server.drop_answer = True  # the next batch reaches the server but its answer is lost
    with pytest.raises(TransportError):
        reopened.upload_pending()
    assert reopened.pending_count() == 4
    server.drop_answer = False
    assert reopened.upload_pending() == 4
    assert reopened.pending_count() == 0
    assert set(server.received) == {d.record_id for d in decisions}
    assert reopened.server_verdict(decisions[0].record_id) == ("accepted", None)
    assert reopened.server_verdict(decisions[3].record_id) == ("duplicate", None)
    record = server.received[decisions[0].record_id]
    assert record == {
        "record_id": decisions[0].record_id,
        "payload": ankang(world, issued_at=NOW),
        "scanned_at": NOW * 1000,
        "clock_source": "gnss",
        "amount_fen": 0,
        "local_result": "accept",
        "local_reason": None,
    }
    # Scans after everything was acknowledged are pending again, also across a restart.
    later = [reopened.scan(ankang(world, issued_at=NOW + 10 + i)) for i in range(2)]
    assert reopened.pending_count() == 2
    reopened.close()
    again = Terminal(
        root_public_keys=world.roots, db_path=str(db), clock=clock, clock_source="gnss", transport=server
    )
    assert again.pending_count() == 2
    assert again.upload_pending() == 2
    assert {d.record_id for d in later} <= set(server.received)
    assert again.pending_count() == 0
    again.close()


def test_record_ids_are_uuid_shaped_and_unique(
    world: World, setup: tuple[Terminal, FakeServer, Clock, Path]
) -> None:
    import uuid

    terminal = setup[0]
    ids = [d.record_id for d in terminal.scan_many([(f"junk{i}", 0) for i in range(50)])]
    assert len(set(ids)) == 50
    assert all(uuid.UUID(i).version == 4 for i in ids)


def test_pipelined_groups_see_the_group_still_committing_and_answer_only_when_durable(
    world: World, setup: tuple[Terminal, FakeServer, Clock, Path]
) -> None:
    terminal, _, clock, db = setup
    holder = world.holder(max_amount_fen=500)
    code = ankang(world)
    first = terminal.submit_many([(code, 0), (holder.ride_code(clock.now), 300)])
    clock.now += 1
    # Decided while the first group may still be on its way to disk: its scans already count.
    second = terminal.submit_many([(code, 0), (holder.ride_code(clock.now), 300)])
    first_decisions = first.result()
    assert [d.result for d in first_decisions] == ["accept", "accept"]
    second_decisions = second.result()
    assert second_decisions[0].repeated and second_decisions[0].record_id == first_decisions[0].record_id
    assert (second_decisions[1].result, second_decisions[1].reason) == (
        "reject",
        "credential.offline_limit_exceeded",
    )
    # Answered means on disk: another connection reads every record of both groups.
    ids = set(stored_record_ids(db))
    assert ids == {first_decisions[0].record_id, first_decisions[1].record_id, second_decisions[1].record_id}
    assert terminal.pending_count() == 3


def test_a_group_acknowledged_in_part_resumes_with_the_rest(
    world: World, setup: tuple[Terminal, FakeServer, Clock, Path]
) -> None:
    terminal, server, clock, db = setup
    decisions = terminal.scan_many([(ankang(world, issued_at=NOW + i), 0) for i in range(7)])
    server.cut_after_batches = 1  # batches of 3: the first three records of the group are acknowledged
    with pytest.raises(TransportError):
        terminal.upload_pending()
    assert terminal.pending_count() == 4
    assert terminal.server_verdict(decisions[2].record_id) == ("accepted", None)
    assert terminal.server_verdict(decisions[3].record_id) == (None, None)
    assert terminal.server_verdict("no-such-record") is None
    terminal.close()

    server.cut_after_batches = None
    server.batches = 0
    reopened = open_terminal(world, db, clock, server)
    assert reopened.pending_count() == 4
    assert reopened.upload_pending() == 4
    assert server.batches == 2  # only the four left went up again: 3 + 1
    assert list(server.received) == [d.record_id for d in decisions]
    assert reopened.pending_count() == 0
    assert reopened.server_verdict(decisions[6].record_id) == ("accepted", None)
    reopened.close()


def test_a_file_from_before_scan_groups_is_converted_on_open(world: World, tmp_path: Path) -> None:
    # The layout an earlier SDK wrote: one row per record, the server's verdict in the row.
    db = tmp_path / "old.sqlite"
    holder = world.holder(max_amount_fen=500)
    ride = holder.ride_code(NOW)
    serial = Verifier(world.trust_list()).verify(ride, NOW).certificate_serial
    with closing(sqlite3.connect(db)) as old:
        old.executescript(
            """
            CREATE TABLE scan_record (
                seq INTEGER PRIMARY KEY, record_id TEXT NOT NULL, payload TEXT NOT NULL,
                scanned_at INTEGER NOT NULL, clock_source TEXT NOT NULL, amount_fen INTEGER NOT NULL,
                local_result TEXT NOT NULL, local_reason TEXT, serial BLOB,
                uploaded INTEGER NOT NULL DEFAULT 0, server_status TEXT, server_reason TEXT
            );
            CREATE TABLE terminal_state (key TEXT PRIMARY KEY, value BLOB NOT NULL);
            """
        )
        old.executemany(
            "INSERT INTO scan_record (record_id, payload, scanned_at, clock_source, amount_fen, local_result,"
            " local_reason, serial, uploaded, server_status, server_reason) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [
                ("r1", ankang(world), NOW * 1000, "ntp", 0, "accept", None, None, 1, "accepted", None),
                ("r2", ride, NOW * 1000, "ntp", 400, "accept", None, serial, 0, None, None),
                (
                    "r3",
                    "junk",
                    NOW * 1000 + 5,
                    "rtc",
                    0,
                    "reject",
                    "credential.malformed",
                    None,
                    0,
                    None,
                    None,
                ),
            ],
        )
        old.commit()

    server = FakeServer(world.envelope(), world.root)
    terminal = Terminal(
        root_public_keys=world.roots, db_path=str(db), clock=Clock(), clock_source="ntp", transport=server
    )
    assert terminal.pending_count() == 2
    assert terminal.server_verdict("r1") == ("accepted", None)
    assert terminal.server_verdict("r2") == (None, None)
    # The 400 fen spent offline before the upgrade still count against the certificate's 500.
    terminal.refresh()
    over = terminal.scan(holder.ride_code(NOW + 1), amount_fen=200)
    assert (over.result, over.reason) == ("reject", "credential.offline_limit_exceeded")
    assert terminal.upload_pending() == 3  # r2, r3 and the new record
    assert server.received["r3"]["clock_source"] == "rtc"
    assert server.received["r3"]["scanned_at"] == NOW * 1000 + 5
    assert stored_record_ids(db) == ["r1", "r2", "r3", over.record_id]
    terminal.close()
    with closing(sqlite3.connect(db)) as after:
        assert after.execute("PRAGMA user_version").fetchone()[0] == 2
        assert not after.execute("SELECT 1 FROM sqlite_master WHERE name = 'scan_record'").fetchall()


def test_a_file_from_a_newer_sdk_is_refused_untouched(world: World, tmp_path: Path) -> None:
    db = tmp_path / "newer.sqlite"
    with closing(sqlite3.connect(db)) as newer:
        newer.execute("PRAGMA user_version = 3")
        newer.execute("CREATE TABLE future (x)")
        newer.commit()
    with pytest.raises(sqlite3.DatabaseError, match="newer than this SDK"):
        Terminal(root_public_keys=world.roots, db_path=str(db), clock=Clock(), clock_source="ntp")
    with closing(sqlite3.connect(db)) as after:
        tables = {row[0] for row in after.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert after.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL either
    assert tables == {"future"}


_WORLD = World()
_RIDERS = [_WORLD.holder(max_amount_fen=500), _WORLD.holder()]
_SCAN_POOL = [
    *(ankang(_WORLD, subject_ref=bytes([n]) * 16) for n in range(3)),
    ankang(_WORLD, issued_at=NOW - 600),  # expired
    *(rider.ride_code(NOW, counter=counter) for rider in _RIDERS for counter in (1, 2, 3)),  # [4:10]
    "not a code",
]


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(st.tuples(st.sampled_from(_SCAN_POOL), st.sampled_from([0, 200, 300])), min_size=1, max_size=10),
    st.integers(0, 2),
    st.integers(0, 10),
)
# the first card's 500 fen are spent across the two pipelined groups: the second must count the first
@example([(_SCAN_POOL[4], 300), (_SCAN_POOL[5], 300)], 0, 1)
def test_groups_are_decided_as_their_scans_are_one_by_one(
    scans: list[tuple[str, int]], earlier: int, cut: int
) -> None:
    """Whatever groups hold (repeats within a group, of the group still committing, or of an earlier one; ride
    codes over their amount; refused codes), each scan is answered as scanning them one at a time answers it,
    and as many records are kept. The groups are `scan_many` after an earlier group, and two `submit_many`
    groups, the second decided while the first commits."""
    with tempfile.TemporaryDirectory() as folder:
        clock = Clock()
        twins = [
            Terminal(
                root_public_keys=_WORLD.roots,
                db_path=f"{folder}/{name}.sqlite",
                clock=clock,
                clock_source="gnss",
                replay_window_s=5,
            )
            for name in ("grouped", "pipelined", "single")
        ]
        for terminal in twins:
            terminal.load_trust_list(_WORLD.envelope())
            terminal.scan_many(scans[:earlier])  # an earlier group some of these codes may repeat
        grouped, pipelined, single = twins
        got = grouped.scan_many(scans)
        first = pipelined.submit_many(scans[:cut])
        second = pipelined.submit_many(scans[cut:])
        got_pipelined = first.result() + second.result()
        expected = [single.scan(payload, amount) for payload, amount in scans]

        def shape(decisions: list[ScanDecision]) -> list[object]:
            return [(d.result, d.reason, d.repeated, d.code) for d in decisions]

        assert shape(got) == shape(expected)
        assert shape(got_pipelined) == shape(expected)
        assert grouped.pending_count() == pipelined.pending_count() == single.pending_count()
        for terminal in twins:
            terminal.close()


def test_a_terminal_whose_clock_is_slow_learns_the_servers_time_and_accepts_valid_codes(
    world: World, tmp_path: Path
) -> None:
    """The terminal's clock is 90 s slow: every fresh code looks issued in the future until the terminal syncs;
    after `refresh` it decides and stamps scans by the server's time, and the offset survives a restart."""
    server = FakeServer(world.envelope(), world.root)
    server.clock_ahead_ms = 90_000
    clock = Clock()
    db = tmp_path / "terminal.sqlite"
    terminal = Terminal(
        root_public_keys=world.roots, db_path=str(db), clock=clock, clock_source="rtc", transport=server
    )
    terminal.load_trust_list(world.envelope())
    fresh = ankang(world, issued_at=NOW + 90)  # issued now, by the server's clock
    assert terminal.scan(fresh).reason == "credential.not_yet_valid"
    terminal.refresh()
    assert terminal.clock_offset_s == 90.0 and server.terminal_times == [NOW * 1000]
    decision = terminal.scan(fresh)
    assert (decision.result, decision.reason) == ("accept", None)
    terminal.upload_pending()
    assert server.received[decision.record_id]["scanned_at"] == (NOW + 90) * 1000
    terminal.close()
    reopened = Terminal(root_public_keys=world.roots, db_path=str(db), clock=clock, clock_source="rtc")
    assert reopened.clock_offset_s == 90.0 and reopened.now() == NOW + 90
    reopened.close()


def test_a_time_answer_that_is_not_the_servers_is_refused(world: World, tmp_path: Path) -> None:
    """Signed by another key, or an old answer replayed (another nonce): the offset stays as it was."""
    server = FakeServer(world.envelope(), Ed25519PrivateKey.generate())
    terminal = Terminal(
        root_public_keys=world.roots,
        db_path=str(tmp_path / "t.sqlite"),
        clock=Clock(),
        clock_source="rtc",
        transport=server,
    )
    with pytest.raises(TrustListError) as forged:
        terminal.sync_clock()
    assert forged.value.code == "time.bad_signature"
    old = sign_server_time(world.root, "root-2026", (NOW + 3600) * 1000, "an-earlier-nonce")
    server.fetch_server_time = lambda nonce, terminal_time_ms: old  # type: ignore[method-assign]
    with pytest.raises(TrustListError) as replayed:
        terminal.sync_clock()
    assert replayed.value.code == "time.nonce_mismatch"
    assert terminal.clock_offset_s == 0.0
    terminal.close()
