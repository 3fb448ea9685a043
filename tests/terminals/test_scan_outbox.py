"""The outbox of uploaded offline scans' events (scans/outbox.py), on the real database: two nodes' deliverers
share the rows and deliver each once, a terminal's events in scan-time order and never two of a terminal at once;
a failed delivery is tried again after a pause, its terminal's later events waiting behind it, also when they
arrive in a later upload on another node; a terminal whose node died (lease expired) is delivered by another; the
live path holds its terminal so no deliverer takes it; a holder renews its lease and a stale one writes nothing;
an app that could not be asked (busy, suspended) does not use up its tries; operators list, replay and purge
kept rows with `yima scan-outbox`, run as a user runs it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

from server.terminals.events import ScanEvent
from server.terminals.scans import outbox_repository
from server.terminals.scans.outbox import ScanOutbox
from server.terminals.scans.outbox_repository import LiveTake, Turn
from tests.e2e._real import YIMA


class RecordingApp:
    """The app side of the sink: records what it handled; fails the first tries of the scans named in `failing`."""

    def __init__(self, terminals: set[str], failing: dict[str, int] | None = None) -> None:
        self.terminals = terminals
        self.failing = failing or {}
        self.heard: list[tuple[str, str, datetime]] = []
        self.tries: Counter[str] = Counter()
        self.handling: set[str] = set()
        self.overlaps: list[str] = []
        """Terminals two of whose events were being handled at once."""

    async def deliver(self, event: ScanEvent, attempt: int) -> str | None:
        if event.terminal_id not in self.terminals:
            return None  # another test's leftovers
        self.tries[event.scan_id] += 1
        if event.terminal_id in self.handling:
            self.overlaps.append(event.terminal_id)
        self.handling.add(event.terminal_id)
        try:
            await asyncio.sleep(0.005)  # a handler takes a moment: the other node claims meanwhile
        finally:
            self.handling.discard(event.terminal_id)
        if self.failing.get(event.scan_id, 0) >= self.tries[event.scan_id]:
            return "miniapp.failed"
        self.heard.append((event.terminal_id, event.scan_id, event.scanned_at))
        return None

    async def check_pass(self, *args: object) -> None:
        raise AssertionError("not used")

    async def scan_recorded(self, event: ScanEvent) -> None:
        raise AssertionError("not used")

    def bound_app(self, kind: str, scene: str) -> str | None:
        return "gov.example.app"


def _event(terminal: str, at: datetime) -> ScanEvent:
    return ScanEvent(
        str(uuid.uuid4()), terminal, "bus", "scene", "accept", None, "ride_code", 1, at, "offline"
    )


async def _rows(db, terminals: set[str]) -> int:
    """Events of these terminals still to deliver."""
    async with db.connection() as conn:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM scan_outbox WHERE terminal_id = ANY($1::text[]) AND status = 'pending'",
                list(terminals),
            )
        )


async def _write(db, events: list[ScanEvent], take: LiveTake | None = None) -> Turn | None:
    """An upload's rows (all of one terminal), its terminal taken as `take` says (default: due at once)."""
    now = datetime.now(UTC)
    take = take or LiveTake(now, None)
    async with db.transaction() as conn:
        return await outbox_repository.insert(
            conn, events[0].terminal_id, events, now, run_at=take.run_at, token=take.token
        )


async def test_two_nodes_deliver_each_event_once_in_scan_time_order_per_terminal(client) -> None:
    db = client.app.state.core.db
    await client.app.state.terminals.scans.outbox.close()  # this test's two nodes only
    terminals = {f"t-{uuid.uuid4().hex[:8]}" for _ in range(4)}
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    events = [_event(t, t0 + timedelta(seconds=i)) for t in sorted(terminals) for i in range(12)]
    events.reverse()  # written latest first: the order is the scans' times, not the rows'
    failing = {events[-3].scan_id: 2}  # fails twice, then is handled; its terminal's later scans wait for it
    app = RecordingApp(terminals, failing)
    for terminal in terminals:
        await _write(db, [e for e in events if e.terminal_id == terminal])
    nodes = [ScanOutbox(db, app, lease_s=60, batch=3, retry_base_s=0.05) for _ in range(2)]  # type: ignore[arg-type]

    deadline = time.monotonic() + 60
    while await _rows(db, terminals):
        assert time.monotonic() < deadline, "the outbox did not empty"
        await asyncio.gather(*(node.tick() for node in nodes))
        await asyncio.sleep(0.01)  # a failed one waits for its retry

    delivered = [scan_id for _, scan_id, _ in app.heard]
    assert sorted(delivered) == sorted(e.scan_id for e in events)  # every event, each once
    assert len(set(delivered)) == len(delivered)
    assert app.tries[events[-3].scan_id] == 3
    assert sum(app.tries.values()) == len(events) + 2  # no event was handed to the app by both nodes
    assert app.overlaps == []  # nor two events of a terminal at once
    per_terminal: dict[str, list[datetime]] = defaultdict(list)
    for terminal, _, at in app.heard:
        per_terminal[terminal].append(at)
    assert set(per_terminal) == terminals
    for times in per_terminal.values():
        assert times == sorted(times) and len(times) == 12


async def test_a_later_upload_on_another_node_waits_behind_a_row_waiting_for_its_retry(client) -> None:
    db = client.app.state.core.db
    await client.app.state.terminals.scans.outbox.close()
    terminal = f"t-{uuid.uuid4().hex[:8]}"
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    first, second = _event(terminal, t0), _event(terminal, t0 + timedelta(seconds=30))
    app = RecordingApp({terminal}, failing={first.scan_id: 1})
    a, b = (ScanOutbox(db, app, lease_s=60, retry_base_s=0.2) for _ in range(2))  # type: ignore[arg-type]

    # node a uploads the first scan and delivers it live: the app fails it, it waits for its retry
    a.deliver_live(await _write(db, [first], a.live_take()))
    await a.drain()
    assert app.tries[first.scan_id] == 1 and app.heard == []
    # the terminal's next upload lands on node b: it is not delivered ahead of the first
    turn = await _write(db, [second], b.live_take())
    assert turn is None
    b.deliver_live(turn)
    await b.drain()
    assert app.heard == []

    deadline = time.monotonic() + 30
    while await _rows(db, {terminal}):
        assert time.monotonic() < deadline, "the outbox did not empty"
        await asyncio.gather(a.tick(), b.tick())
        await asyncio.sleep(0.05)  # the first waits for its retry
    assert [s for _, s, _ in app.heard] == [first.scan_id, second.scan_id]
    assert app.overlaps == []


async def test_a_dead_nodes_terminal_is_delivered_once_its_lease_expired_and_live_ones_are_left_alone(
    client,
) -> None:
    db = client.app.state.core.db
    await client.app.state.terminals.scans.outbox.close()
    terminal = f"t-{uuid.uuid4().hex[:8]}"
    app = RecordingApp({terminal})
    node = ScanOutbox(db, app, lease_s=60)  # type: ignore[arg-type]
    now = datetime.now(UTC)
    live = [_event(terminal, now - timedelta(seconds=2))]
    dead = ScanOutbox(db, app, lease_s=60)  # type: ignore[arg-type]
    assert await _write(db, live, dead.live_take()) is not None  # an upload delivering them itself

    async def mine() -> list[str]:
        return [r.event.scan_id for r in await node.tick() if r.event.terminal_id == terminal]

    assert await mine() == [] and app.heard == []
    async with db.transaction() as conn:  # that upload's process died: its lease ran out
        await conn.execute(
            "UPDATE scan_outbox_terminals SET run_at = $2 WHERE terminal_id = $1", terminal, now
        )
    assert await mine() == [live[0].scan_id]
    assert [s for _, s, _ in app.heard] == [live[0].scan_id] and await _rows(db, {terminal}) == 0

    # the live path: handled at once after the commit, the rows gone; nothing left for the deliverers
    fresh = ScanOutbox(db, app, lease_s=60)  # type: ignore[arg-type]
    later = [_event(terminal, now - timedelta(seconds=1)), _event(terminal, now)]
    fresh.deliver_live(await _write(db, later, fresh.live_take()))
    await fresh.drain()
    assert [s for _, s, _ in app.heard][1:] == [e.scan_id for e in later]
    assert await _rows(db, {terminal}) == 0
    async with db.connection() as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM scan_outbox_terminals WHERE terminal_id = $1", terminal)
            == 0
        )


class GatedApp:
    """An app whose handler answers only when the test says: each call waits on its own future."""

    def __init__(self, terminal: str) -> None:
        self.terminal = terminal
        self.calls: list[tuple[str, asyncio.Future[str | None]]] = []
        self.called = asyncio.Event()

    async def deliver(self, event: ScanEvent, attempt: int) -> str | None:
        if event.terminal_id != self.terminal:
            return None
        answer: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self.calls.append((event.scan_id, answer))
        self.called.set()
        return await answer

    async def next_call(self, n: int) -> asyncio.Future[str | None]:
        """The future of the n-th call (from 1), once it was made."""
        while len(self.calls) < n:
            self.called.clear()
            await asyncio.wait_for(self.called.wait(), 30)
        return self.calls[n - 1][1]


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def _turn(db, terminal: str) -> tuple[datetime, uuid.UUID | None] | None:
    async with db.connection() as conn:
        r = await conn.fetchrow(
            "SELECT run_at, lease_token FROM scan_outbox_terminals WHERE terminal_id = $1", terminal
        )
    return None if r is None else (r["run_at"], r["lease_token"])


async def test_a_holder_renews_its_lease_while_the_app_takes_long_so_no_one_else_takes_the_terminal(
    client,
) -> None:
    db = client.app.state.core.db
    await client.app.state.terminals.scans.outbox.close()
    terminal = f"t-{uuid.uuid4().hex[:8]}"
    app = GatedApp(terminal)
    clock = Clock()
    a = ScanOutbox(db, app, lease_s=60, renew_s=0.01, clock=clock)  # type: ignore[arg-type]
    b = ScanOutbox(db, app, lease_s=60, clock=clock)  # type: ignore[arg-type]
    event = _event(terminal, datetime.now(UTC) - timedelta(minutes=1))
    a.deliver_live(await _write(db, [event], a.live_take()))
    answer = await app.next_call(1)  # a's call of the app runs on ...
    for _ in range(3):  # ... for three minutes, three times the lease
        clock.now += 50
        want = datetime.fromtimestamp(clock.now + 60, UTC)
        deadline = time.monotonic() + 30
        while (turn := await _turn(db, terminal)) is not None and turn[0] < want:
            assert time.monotonic() < deadline, "the lease was not renewed"
            await asyncio.sleep(0.01)  # a's renewal of its lease comes a moment later
        assert await b.tick() == []  # held: b takes nothing
    assert len(app.calls) == 1
    answer.set_result(None)
    await a.drain()
    assert await _rows(db, {terminal}) == 0 and await _turn(db, terminal) is None


async def test_a_stale_holders_failure_changes_nothing_of_the_new_holders_terminal(client) -> None:
    db = client.app.state.core.db
    await client.app.state.terminals.scans.outbox.close()
    terminal = f"t-{uuid.uuid4().hex[:8]}"
    app = GatedApp(terminal)
    clock = Clock()
    # a holds the terminal and never renews (a process stalled: a long GC pause, a frozen VM)
    a = ScanOutbox(db, app, lease_s=60, renew_s=3600, clock=clock)  # type: ignore[arg-type]
    b = ScanOutbox(db, app, lease_s=60, clock=clock)  # type: ignore[arg-type]
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    first, second = _event(terminal, t0), _event(terminal, t0 + timedelta(seconds=1))
    a.deliver_live(await _write(db, [first, second], a.live_take()))
    stale = await app.next_call(1)
    clock.now += 61  # a's lease ended: b takes the terminal and calls the app with the first event
    b_tick = asyncio.ensure_future(b.tick())
    fresh = await app.next_call(2)
    held = await _turn(db, terminal)
    assert held is not None and held[1] is not None

    stale.set_result("miniapp.failed")  # a wakes up: its failure must not touch b's terminal or row
    await a.drain()
    assert await _turn(db, terminal) == held  # not let go until a retry: b still holds it
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT attempt, last_error FROM scan_outbox WHERE scan_id = $1", uuid.UUID(first.scan_id)
        )
    assert (row["attempt"], row["last_error"]) == (0, None)

    fresh.set_result(None)
    (await app.next_call(3)).set_result(None)
    assert [r.event.scan_id for r in await b_tick] == [first.scan_id, second.scan_id]
    assert await _rows(db, {terminal}) == 0 and await _turn(db, terminal) is None


class ScriptedApp:
    """An app whose handler answers each event's tries from a script (then None: handled)."""

    def __init__(self, terminal: str, script: dict[str, list[str | None]]) -> None:
        self.terminal = terminal
        self.script = script
        self.heard: list[str] = []

    async def deliver(self, event: ScanEvent, attempt: int) -> str | None:
        if event.terminal_id != self.terminal:
            return None
        answers = self.script.get(event.scan_id, [])
        answer = answers.pop(0) if answers else None
        if answer is None:
            self.heard.append(event.scan_id)
        return answer


async def _deliver_all(node: ScanOutbox, clock: Clock, db, terminal: str) -> None:
    """Tick until the terminal has nothing pending, each round past any pause (the injected clock)."""
    for _ in range(100):
        if not await _rows(db, {terminal}):
            return
        await node.tick()
        clock.now += 3601
    raise AssertionError("the outbox did not empty")


async def _kept(db, scan_id: str) -> tuple[str, int, int, str | None]:
    async with db.connection() as conn:
        r = await conn.fetchrow(
            "SELECT status, attempt, deferred, last_error FROM scan_outbox WHERE scan_id = $1",
            uuid.UUID(scan_id),
        )
    return r["status"], r["attempt"], r["deferred"], r["last_error"]


async def test_an_app_busy_or_suspended_does_not_use_up_its_tries_its_handlers_failures_do(client) -> None:
    db = client.app.state.core.db
    await client.app.state.terminals.scans.outbox.close()
    terminal = f"t-{uuid.uuid4().hex[:8]}"
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    waits, breaks = _event(terminal, t0), _event(terminal, t0 + timedelta(seconds=1))
    put_off: list[str | None] = ["miniapp.busy"] * 8 + ["miniapp.suspended"] * 4 + ["miniapp.not_loaded"]
    app = ScriptedApp(terminal, {waits.scan_id: put_off, breaks.scan_id: ["miniapp.failed"] * 20})
    clock = Clock()
    node = ScanOutbox(db, app, lease_s=60, clock=clock)  # type: ignore[arg-type]
    await _write(db, [waits, breaks])
    await _deliver_all(node, clock, db, terminal)
    # 13 times the app could not be asked, then it handled the event: its first and only try
    assert app.heard == [waits.scan_id]
    assert await _kept(db, waits.scan_id) == ("delivered", 1, 13, "miniapp.not_loaded")
    # its handler failed every time: given up after 10 tries
    assert await _kept(db, breaks.scan_id) == ("failed", 10, 0, "miniapp.failed")


def _yima(settings, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`yima ARGV` as an operator runs it on a server's machine: its settings from YIMA_* variables."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("YIMA_")}
    environ.update(
        YIMA_MODE="test",
        YIMA_DATABASE_URL=settings.database_url,
        YIMA_MASTER_KEY=settings.master_key,
        YIMA_DATA_DIR=str(settings.data_dir),
        **env,
    )
    return subprocess.run(
        [YIMA, *argv], env=environ, capture_output=True, text=True, timeout=120, check=False
    )


async def test_operators_list_replay_and_purge_kept_events_with_the_cli(client, settings) -> None:
    db = client.app.state.core.db
    await client.app.state.terminals.scans.outbox.close()
    terminal = f"t-{uuid.uuid4().hex[:8]}"
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    ok, broken, old = (_event(terminal, t0 + timedelta(seconds=i)) for i in range(3))
    app = ScriptedApp(terminal, {broken.scan_id: ["miniapp.failed"] * 10})
    clock = Clock()
    node = ScanOutbox(db, app, lease_s=60, clock=clock)  # type: ignore[arg-type]
    await _write(db, [ok, broken, old])
    await _deliver_all(node, clock, db, terminal)
    assert app.heard == [ok.scan_id, old.scan_id]

    # the operator sees the event the app never handled, and why
    listed = _yima(settings, "scan-outbox", "list", "--terminal", terminal)
    assert listed.returncode == 0, listed.stderr
    assert (
        broken.scan_id in listed.stdout
        and "miniapp.failed" in listed.stdout
        and ok.scan_id not in listed.stdout
    )
    listed = _yima(settings, "scan-outbox", "list", "--terminal", terminal, "--status", "delivered", "--json")
    assert sorted(r["scan_id"] for r in json.loads(listed.stdout)) == sorted([ok.scan_id, old.scan_id])

    # the app was fixed: the operator replays it; a running server delivers it, its tries starting over
    replayed = _yima(settings, "scan-outbox", "replay", "--all-failed", "--terminal", terminal)
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 1 " in replayed.stdout
    assert await _kept(db, broken.scan_id) == ("pending", 0, 0, None)
    # on record: who replayed what (the app hears it again), in the MAC-chained audit log
    async with db.connection() as conn:
        record = await conn.fetchrow(
            "SELECT actor, target, details FROM audit_log WHERE action = 'scan_outbox.replayed'"
            " ORDER BY seq DESC LIMIT 1"
        )
    assert record is not None and (record["actor"], record["target"]) == ("cli", f"terminal:{terminal}")
    assert record["details"] == {"count": 1, "all_failed": True, "scan_ids": [broken.scan_id]}
    verified = _yima(settings, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    await _deliver_all(node, clock, db, terminal)
    assert app.heard == [ok.scan_id, old.scan_id, broken.scan_id]
    assert (
        _yima(settings, "scan-outbox", "list", "--terminal", terminal).stdout.strip()
        == "no failed scan events"
    )
    unknown = str(uuid.uuid4())
    replayed = _yima(settings, "scan-outbox", "replay", unknown)
    assert replayed.returncode == 1 and unknown in replayed.stderr

    # kept for the retention period, then deleted
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE scan_outbox SET finished_at = now() - interval '3 days' WHERE scan_id = $1",
            uuid.UUID(old.scan_id),
        )
    purged = _yima(settings, "scan-outbox", "purge", YIMA_SCAN_OUTBOX_RETENTION_DAYS="2")
    assert purged.returncode == 0, purged.stderr
    listed = _yima(settings, "scan-outbox", "list", "--terminal", terminal, "--status", "delivered", "--json")
    assert sorted(r["scan_id"] for r in json.loads(listed.stdout)) == sorted([ok.scan_id, broken.scan_id])


async def _blocked(db, pid: int) -> None:
    """Until the backend `pid` waits for a lock."""
    deadline = time.monotonic() + 30
    async with db.connection() as conn:
        while not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted)", pid
        ):
            assert time.monotonic() < deadline, "the purge did not wait for the replay's lock"
            await asyncio.sleep(0.01)


async def test_a_purge_waiting_on_a_replay_keeps_the_row_the_replay_made_pending(client) -> None:
    db = client.app.state.core.db
    await client.app.state.terminals.scans.outbox.close()
    terminal = f"t-{uuid.uuid4().hex[:8]}"
    event = _event(terminal, datetime.now(UTC) - timedelta(days=30))
    await _write(db, [event])
    async with db.transaction() as conn:  # given up a month ago: past the retention period
        await conn.execute(
            "UPDATE scan_outbox SET status = 'failed', finished_at = now() - interval '30 days'"
            " WHERE scan_id = $1",
            uuid.UUID(event.scan_id),
        )
    async with db.connection() as replaying, db.connection() as purging:
        tx = replaying.transaction()
        await tx.start()
        assert await outbox_repository.replay(
            replaying, datetime.now(UTC), scan_ids=[uuid.UUID(event.scan_id)]
        )
        # the hourly purge starts while the operator's replay is not committed yet: it waits for the row
        purge = asyncio.ensure_future(
            outbox_repository.purge(purging, datetime.now(UTC) - timedelta(days=14), 1000)
        )
        await _blocked(db, purging.get_server_pid())
        await tx.commit()
        assert await purge == 0
    assert await _rows(db, {terminal}) == 1  # still there, to be delivered again
    assert await _kept(db, event.scan_id) == ("pending", 0, 0, None)


async def test_an_app_suspended_for_days_still_puts_the_event_off_and_lets_go_of_the_terminal(client) -> None:
    """`deferred` has no bound (an app suspended for days is asked again every few minutes): past 1024 put-off
    tries the pause is still the longest one, and the terminal is let go until then."""
    db = client.app.state.core.db
    await client.app.state.terminals.scans.outbox.close()
    terminal = f"t-{uuid.uuid4().hex[:8]}"
    event = _event(terminal, datetime.now(UTC) - timedelta(days=4))
    await _write(db, [event])
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE scan_outbox SET deferred = 1024 WHERE scan_id = $1", uuid.UUID(event.scan_id)
        )
    app = ScriptedApp(terminal, {event.scan_id: ["miniapp.suspended"]})
    clock = Clock()
    node = ScanOutbox(db, app, lease_s=60, clock=clock)  # type: ignore[arg-type]
    await node.tick()
    assert await _kept(db, event.scan_id) == ("pending", 0, 1025, "miniapp.suspended")
    turn = await _turn(db, terminal)
    assert turn is not None and turn[1] is None  # let go, due again after the longest pause
    assert turn[0] == datetime.fromtimestamp(clock.now + 300, UTC)


async def test_an_event_that_no_longer_decodes_uses_up_its_tries_and_the_terminals_next_goes_on(
    client, caplog
) -> None:
    db = client.app.state.core.db
    await client.app.state.terminals.scans.outbox.close()
    terminal = f"t-{uuid.uuid4().hex[:8]}"
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    broken, after = _event(terminal, t0), _event(terminal, t0 + timedelta(seconds=1))
    await _write(db, [broken, after])
    async with db.transaction() as conn:  # written by a version whose ScanEvent this one cannot read
        await conn.execute(
            "UPDATE scan_outbox SET event = $2 WHERE scan_id = $1",
            uuid.UUID(broken.scan_id),
            '{"scan_id": "x", "user_id": "u_secret_resident"}',
        )
    app = ScriptedApp(terminal, {})
    clock = Clock()
    node = ScanOutbox(db, app, lease_s=60, clock=clock)  # type: ignore[arg-type]
    await _deliver_all(node, clock, db, terminal)
    assert app.heard == [after.scan_id]
    status, attempt, deferred, error = await _kept(db, broken.scan_id)
    assert (status, attempt, deferred) == ("failed", 10, 0)
    assert error is not None and error.startswith("scan_outbox.undecodable")
    assert "u_secret_resident" not in error and "u_secret_resident" not in caplog.text
