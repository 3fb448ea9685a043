"""The outbox of uploaded offline scans' events: delivered to the app bound to the scene at least once.

An offline upload writes one `scan_outbox` row per accepted scan whose scene has a bound app, in the transaction
that stores the scans and settles their ride charges (offline.py). A row is deleted only after the app's handler
returned, so a server stopped between the upload's commit and the app's handler (kill -9, a power cut) loses no
event: another node, or this one restarted, delivers it. Apps therefore hear an uploaded scan at least once and key
what they do on its scan id (a bus app refunds `ride_<scan id>` once per key).

- The live path: the uploading process leases its rows as it writes them and delivers them right after the
  commit, one after another per terminal in scan-time order, deleting each row once handled; latency does not grow.
- The deliverer: every node polls for a terminal's earliest pending row (FOR UPDATE SKIP LOCKED, under a lease), so
  a terminal's events reach the app in scan-time order and each row is held by one node at a time; rows whose
  lease expired (their process died) are due again.
- A failed delivery (the app raised, timed out, was not loaded) is written to the app's log and tried again after
  a growing pause; after OUTBOX_ATTEMPTS tries the row is kept as `failed` and the terminal's later rows go on.

Its SQL is in outbox_repository.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from yima_sdk.contract import job_retry_delay

from server.db import Database
from server.terminals.events import NOT_READY, ScanEvent, ScanEventSink
from server.terminals.scans.outbox_repository import OutboxRow, claim, delivered, failed, release

log = logging.getLogger("yima.terminals.outbox")

OUTBOX_ATTEMPTS = 10
RETRY_BASE_S = 5.0


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.events = events
        self.poll_s = poll_s
        self.lease_s = lease_s
        """Longer than a live upload's deliveries take: a live delivery keeps its rows."""
        self.hold_s = hold_s
        """Test hook (YIMA_SCAN_OUTBOX_HOLD_S, 0 in service): no live delivery, and rows wait this long for the
        deliverer; a test stops the server between an upload's commit and the app's handler with it."""
        self.batch = batch
        self.retry_base_s = retry_base_s
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._live: dict[str, asyncio.Task[bool]] = {}
        """Per terminal, its latest upload still being delivered live: the next one waits for it."""
        self._background: set[asyncio.Task[bool]] = set()
        self._holding: set[uuid.UUID] = set()
        """Rows this process leased and has not finished: handed back at once when it stops."""

    @property
    def live(self) -> bool:
        return self.hold_s <= 0

    def lease_for_live(self) -> dt.datetime | None:
        """The lease an upload's rows are written with: held by this process, which delivers them after the
        commit (None under the hold hook: the deliverers do)."""
        return _utc(self.clock() + self.lease_s) if self.live else None

    def deliver_live(self, terminal_id: str, events: Sequence[ScanEvent]) -> None:
        """After the upload committed: deliver its events in the background, after the terminal's previous
        upload's, in the order given (scan time)."""
        if not events or not self.live:
            return
        self._holding.update(uuid.UUID(e.scan_id) for e in events)
        task = asyncio.ensure_future(self._deliver_after(self._live.get(terminal_id), list(events)))
        self._live[terminal_id] = task
        self._background.add(task)
        task.add_done_callback(functools.partial(self._finished, terminal_id))

    def _finished(self, terminal_id: str, task: asyncio.Task[bool]) -> None:
        self._background.discard(task)
        if self._live.get(terminal_id) is task:
            del self._live[terminal_id]

    async def _deliver_after(self, after: asyncio.Task[bool] | None, events: list[ScanEvent]) -> bool:
        """True when every event was handled; else the rest are left to the deliverers, which keep the order
        (and so are the next upload's of this terminal)."""
        ok = True
        if after is not None:
            await asyncio.wait({after})
            ok = not after.cancelled() and after.exception() is None and after.result()
        for i, event in enumerate(events):
            if ok:
                try:
                    ok = await self._deliver(OutboxRow(uuid.UUID(event.scan_id), event, 1))
                except Exception:
                    log.warning("live scan event delivery failed", exc_info=True)
                    ok = False
                if ok:
                    continue
                i += 1  # this one is scheduled for its retry (or leased until its lease ends)
            rest = [uuid.UUID(e.scan_id) for e in events[i:]]
            with contextlib.suppress(Exception):
                async with self.db.transaction() as conn:
                    await release(conn, rest)
            self._holding.difference_update(rest)
            return False
        return True

    async def _deliver(self, row: OutboxRow) -> bool:
        """Call the app's handler; delete the row once it returned, else schedule the next try. True if done."""
        error = await self.events.deliver(row.event, row.attempt)
        now = self.clock()
        async with self.db.transaction() as conn:
            if error is None:
                await delivered(conn, row.scan_id)
            elif error == NOT_READY:  # this process's platform is starting: not a try of the app
                await failed(conn, row.scan_id, attempt=row.attempt - 1, error=error, run_at=_utc(now + 1))
            else:
                last = row.attempt >= OUTBOX_ATTEMPTS
                run_at = None if last else _utc(now + job_retry_delay(row.attempt, self.retry_base_s))
                await failed(conn, row.scan_id, attempt=row.attempt, error=error, run_at=run_at)
                if last:
                    log.warning("scan event given up", extra={"scan": str(row.scan_id), "error": error})
        self._holding.discard(row.scan_id)
        return error is None

    async def tick(self) -> list[OutboxRow]:
        """One round of the deliverer: claim due head rows and deliver them; the rows it tried."""
        now = self.clock()
        async with self.db.transaction() as conn:
            rows = await claim(conn, _utc(now - self.hold_s), _utc(now), _utc(now + self.lease_s), self.batch)
        self._holding.update(row.scan_id for row in rows)
        await asyncio.gather(
            *(self._deliver(row) for row in rows)
        )  # one row per terminal: no order among them
        return rows

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="scan-outbox")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                while await self.tick():
                    pass  # a terminal's next row may be due now
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("scan outbox round failed", exc_info=True)

    async def drain(self) -> None:
        """Wait for this node's live deliveries still running."""
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
        if holding:
            with contextlib.suppress(Exception):
                async with self.db.transaction() as conn:
                    await release(conn, holding)
