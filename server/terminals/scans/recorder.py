"""Group commit for online scans: concurrent scans share one COPY (its own transaction), each answered after it.

A scan that spends a code (a `once` scene, a ride code) carries the code's replay key: its commit then is one
INSERT that claims the key in `scan_replay_claims` and stores the scan together (repository.insert_scans_claiming),
so a claim never exists without its record, and a code spent before (online or in an offline upload) is stored
and answered as `scan.replayed`. Scans that spend nothing keep the COPY.

While a commit is on its way to disk, new scans queue; the next commit takes all of them. Under light load a
scan commits alone at once (no added wait); under heavy load the commits grow instead of the queue.

The writer keeps one pooled connection for itself and sends each COPY outside an explicit transaction: a COPY
commits on its own, so BEGIN, COMMIT and the pool's per-release reset were three round trips (and their server
time) per commit for nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import asyncpg

from server.db import Database
from server.errors import Unavailable
from server.terminals import repository
from server.terminals.scans.record import StoredScan

log = logging.getLogger("yima.terminals.recorder")

# What a connection lost in the middle of a COPY raises, depending on when asyncpg notices.
_CONNECTION_ERRORS = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
)


def _usable(conn: asyncpg.Connection) -> bool:
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:  # the pool took back a connection that died
        return False


class ScanRecorder:
    def __init__(self, db: Database, *, max_batch: int = 512) -> None:
        self._db = db
        self._max_batch = max_batch
        self._pending: list[tuple[StoredScan, bytes | None, asyncio.Future[bool]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._conn: asyncpg.Connection | None = None
        self.commits = 0
        self.recorded = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="scan-recorder")

    async def stop(self) -> None:
        """Commit what is queued, then end the writer."""
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            await self._task
        await self._release()

    async def _release(self, *, broken: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        # A connection the server dropped has already gone back to the pool, which replaces it.
        with contextlib.suppress(asyncpg.InterfaceError):
            if broken:
                conn.terminate()
            await self._db.pool.release(conn)

    async def _copy(self, scans: list[StoredScan], claims: list[bytes | None]) -> set[uuid.UUID]:
        if self._conn is not None and not _usable(self._conn):
            await self._release()  # dropped while idle: nothing was in flight, just take a fresh one
        try:
            if self._conn is None:
                self._conn = await self._db.pool.acquire(timeout=self._db.acquire_timeout_s)
            if any(claims):
                return await repository.insert_scans_claiming(self._conn, scans, claims)
            await repository.copy_scans(self._conn, scans)
            return set()
        except Exception as exc:
            lost = isinstance(exc, (*_CONNECTION_ERRORS, TimeoutError)) or (
                self._conn is not None and not _usable(self._conn)
            )
            if not lost:
                raise
            await self._release(broken=True)  # the next commit starts on a fresh connection
            raise Unavailable(
                "The scan could not be stored; send it again", code="service.db_unavailable"
            ) from exc

    async def record(self, scan: StoredScan, claim: bytes | None = None) -> bool:
        """Return once the scan is committed; raise if its commit failed (then nothing was stored or claimed).

        With `claim` (a replay key), the scan spends it: False when it was spent before, and the scan was stored
        as `scan.replayed` instead."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((scan, claim, future))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
                try:
                    spent = await self._copy([scan for scan, _, _ in batch], [claim for _, claim, _ in batch])
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.error("scan records not committed", exc_info=exc)
                    for *_, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.commits += 1
                self.recorded += len(batch)
                for scan, _, future in batch:
                    if not future.done():
                        future.set_result(scan.id not in spent)
            if self._stopping:
                return
