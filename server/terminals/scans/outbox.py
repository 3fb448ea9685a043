"""The outbox of uploaded offline scans' events: delivered to the app bound to the scene at least once.

An offline upload writes one `scan_outbox` row per accepted scan whose scene has a bound app, in the transaction
that stores the scans and settles their ride charges (offline.py). A row is marked delivered only after the app's
handler returned, so a server stopped between the upload's commit and the app's handler (kill -9, a power cut)
loses no event: another node, or this one restarted, delivers it. Apps therefore hear an uploaded scan at least once and key
what they do on its scan id (a bus app refunds `ride_<scan id>` once per key).

A terminal's events reach the app one after another in scan-time order, across processes: a deliverer holds a
whole terminal (its `scan_outbox_terminals` row, under a lease) and delivers its pending rows earliest first until
none is left; nobody else delivers that terminal's rows meanwhile.

- The live path: the uploading process takes its terminal in the upload's transaction, unless another process
  holds it or an earlier row waits for its retry, and then delivers right after the commit; latency does not grow.
  When it cannot take it, the new rows wait behind the earlier ones (the holder delivers them too).
- The deliverer: every node polls for due terminals (FOR UPDATE SKIP LOCKED): nobody holds them, or their
  holder's lease ended (its process died), and they are not waiting for a retry.
- A failed delivery (the app raised, timed out, crashed; the delivery itself raised; the stored event no longer
  decodes) is written to the app's log and tried again after a growing pause, the terminal's later rows waiting
  behind it; after OUTBOX_ATTEMPTS tries the row is kept as `failed` and the terminal's later rows go on. An app that could not be asked (NOT_ASKED: busy, not loaded,
  suspended) puts the row off the same way without using up a try.
- Delivered and failed rows are kept `retention_days`, then deleted (purge); `yima scan-outbox` (outbox_cli.py)
  lists and replays them.

Its SQL is in outbox_repository.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from yima_sdk.contract import job_retry_delay

from server.db import Database
from server.terminals.events import NOT_ASKED, NOT_READY, ScanEventSink
from server.terminals.scans import outbox_repository as repo
from server.terminals.scans.outbox_repository import LiveTake, OutboxRow, Turn

log = logging.getLogger("yima.terminals.outbox")

OUTBOX_ATTEMPTS = 10
"""The app's tries of an event (its handler failed or was late) before the row is kept as `failed`."""
RETRY_BASE_S = 5.0
DEFER_MAX_S = 300.0
"""The longest pause of an event the app could not be asked to handle (NOT_ASKED): it is tried again at least
this often, however long the app stays busy or suspended."""
PURGE_EVERY_S = 3600.0


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


class ScanOutbox:
    """This node's deliveries of uploaded scans' events: the live path after an upload, and the deliverer."""

    def __init__(
        self,
        db: Database,
        events: ScanEventSink,
        *,
        poll_s: float = 1.0,
        lease_s: float = 300.0,
        hold_s: float = 0.0,
        batch: int = 16,
        retry_base_s: float = RETRY_BASE_S,
        renew_s: float | None = None,
        retention_days: float = 14,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.events = events
        self.poll_s = poll_s
        self.lease_s = lease_s
        """How long a holder keeps a terminal without a word: a process that died leaves it due after that."""
        self.hold_s = hold_s
        """Test hook (YIMA_SCAN_OUTBOX_HOLD_S, 0 in service): no live delivery, and this process's deliverer takes
        a terminal this long after it was due; a test stops the server between an upload's commit and the app's
        handler with it (the restarted one, without the hook, delivers at once)."""
        self.renew_s = lease_s / 3 if renew_s is None else renew_s
        """How often a holder renews its lease while it delivers: a third of it, so a slow round trip or two
        does not lose it."""
        self.batch = batch
        """Terminals the deliverer holds at once on this node."""
        self.retry_base_s = retry_base_s
        self.retention_days = retention_days
        """Delivered and failed rows are deleted this long after they finished (purge)."""
        self.clock = clock
        self._purged_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[list[OutboxRow]]] = set()
        self._claimed: set[asyncio.Task[list[OutboxRow]]] = set()
        """The deliverer's holders (at most `batch`); the live path's are only in `_background`."""
        self._holding: set[Turn] = set()
        """Terminals this process holds: let go at once when it stops."""

    @property
    def live(self) -> bool:
        return self.hold_s <= 0

    def live_take(self) -> LiveTake:
        """How the upload about to be written takes its terminal (see LiveTake)."""
        now = self.clock()
        if self.live:
            return LiveTake(_utc(now + self.lease_s), uuid.uuid4())
        return LiveTake(_utc(now), None)  # due now; the deliverers of a process under the hook wait hold_s

    def deliver_live(self, turn: Turn | None) -> None:
        """After the upload committed: deliver the terminal it took in the background (None: it took none)."""
        if turn is not None:
            self._spawn(turn)

    def _spawn(self, turn: Turn) -> asyncio.Task[list[OutboxRow]]:
        self._holding.add(turn)
        task = asyncio.ensure_future(self._hold(turn))
        self._background.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[list[OutboxRow]]) -> None:
        self._background.discard(task)
        self._claimed.discard(task)

    async def _hold(self, turn: Turn) -> list[OutboxRow]:
        """Deliver the held terminal's rows earliest first until none is left (the turn is dropped), one failed
        (let go until its retry) or the turn was lost (its lease ended and another took it); the rows tried."""
        tried: list[OutboxRow] = []
        lost = asyncio.Event()
        renewing = asyncio.ensure_future(self._renew(turn, lost))
        try:
            while not lost.is_set():
                async with self.db.connection() as conn:
                    row = await repo.head(conn, turn.terminal_id)
                if row is None:
                    async with self.db.transaction() as conn:
                        finished = await repo.finish(conn, turn)
                    if finished == "more":
                        continue  # an upload or a replay wrote rows meanwhile
                    break
                tried.append(row)
                if not await self._deliver(turn, row):
                    break
        except Exception:
            # the lease ends by itself: the terminal is due again then (on any node)
            log.warning("scan event delivery failed", exc_info=True)
        else:
            self._holding.discard(turn)
        finally:
            renewing.cancel()
        return tried

    async def _renew(self, turn: Turn, lost: asyncio.Event) -> None:
        """Keep the lease while the app takes its time (a handler may wait for a worker, then run to its
        deadline); sets `lost` when another holds the terminal now."""
        while True:
            await asyncio.sleep(self.renew_s)
            try:
                async with self.db.transaction() as conn:
                    held = await repo.renew(conn, turn, _utc(self.clock() + self.lease_s))
            except Exception:
                log.warning("scan outbox lease not renewed", exc_info=True)
                continue  # tried again; the writes check the token whatever happens
            if not held:
                log.warning("scan outbox lease lost", extra={"terminal": turn.terminal_id})
                lost.set()
                return

    async def _deliver(self, turn: Turn, row: OutboxRow) -> bool:
        """Call the app's handler; delete the row once it returned, else note the try. True: go on with the
        terminal's next row; False: the terminal was let go until its retry, or is not held any more (a holder
        whose lease ended writes nothing: the new holder delivers the row again)."""
        error = row.broken
        if row.event is not None:
            try:
                error = await self.events.deliver(row.event, row.attempt + 1)
            except Exception as exc:  # a try like any failed one: else the terminal's later rows wait forever
                log.warning(
                    "scan event delivery raised",
                    extra={"scan": str(row.scan_id), "error": type(exc).__name__},
                )
                error = f"scan_outbox.error: {type(exc).__name__}"
        now = self.clock()
        async with self.db.transaction() as conn:
            if error is None:
                held = await repo.delivered(conn, turn, row.scan_id, _utc(now))
            elif error in NOT_ASKED:  # the app could not be asked: put off, not one of its tries
                held = await repo.failed(conn, turn, row, error=error, counted=False, now=_utc(now))
                pause = (
                    1.0
                    if error == NOT_READY
                    else job_retry_delay(row.deferred + 1, self.retry_base_s, DEFER_MAX_S)
                )
                if held:
                    await repo.release(conn, turn, _utc(now + pause))
                return False
            else:
                last = row.attempt + 1 >= OUTBOX_ATTEMPTS
                held = await repo.failed(
                    conn, turn, row, error=error, counted=True, now=_utc(now), final=last
                )
                if held and not last:
                    await repo.release(
                        conn, turn, _utc(now + job_retry_delay(row.attempt + 1, self.retry_base_s))
                    )
                    return False
                if held:
                    log.warning("scan event given up", extra={"scan": str(row.scan_id), "error": error})
            if not held:
                log.warning("scan outbox lease lost", extra={"terminal": turn.terminal_id})
                return False
            return await repo.renew(conn, turn, _utc(now + self.lease_s))

    async def tick(self) -> list[OutboxRow]:
        """One round of the deliverer, to the end: claim due terminals and deliver them; the rows it tried."""
        turns = await self._claim(self.batch)
        tried = await asyncio.gather(*(self._spawn(turn) for turn in turns))  # no order among terminals
        return [row for rows in tried for row in rows]

    async def _claim(self, limit: int) -> list[Turn]:
        now = self.clock()
        async with self.db.transaction() as conn:
            return await repo.claim(conn, _utc(now - self.hold_s), _utc(now + self.lease_s), limit)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="scan-outbox")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                free = self.batch - len(self._claimed)
                if free > 0:
                    self._claimed.update(self._spawn(turn) for turn in await self._claim(free))
                if self.clock() - self._purged_at >= PURGE_EVERY_S:
                    await self.purge()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("scan outbox round failed", exc_info=True)

    async def purge(self) -> int:
        """Delete the delivered and failed rows that finished more than `retention_days` ago, in bounded batches;
        how many."""
        self._purged_at = self.clock()
        before = _utc(self._purged_at - self.retention_days * 86400)
        total = 0
        while True:
            async with self.db.transaction() as conn:
                deleted = await repo.purge(conn, before, limit=1000)
            total += deleted
            if deleted < 1000:
                return total

    async def drain(self) -> None:
        """Wait for this node's deliveries still running."""
        while self._background:
            await asyncio.wait(set(self._background))

    async def close(self) -> None:
        tasks: list[asyncio.Task[Any]] = [*self._background]
        if self._task is not None:
            tasks.append(self._task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        holding = list(self._holding)  # cut short or not started: any node may deliver them now
        self._holding.clear()
        if holding:
            with contextlib.suppress(Exception):
                async with self.db.transaction() as conn:
                    for turn in holding:
                        await repo.release(conn, turn, _utc(self.clock()))
