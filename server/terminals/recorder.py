"""Group commit for online scans: concurrent scans share one COPY and one COMMIT, each answered after it.

While a commit is on its way to disk, new scans queue; the next commit takes all of them. Under light load a
scan commits alone at once (no added wait); under heavy load the commits grow instead of the queue.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from server.db import Database
from server.terminals import repository

log = logging.getLogger("yima.terminals.recorder")


class ScanRecorder:
    def __init__(self, db: Database, *, max_batch: int = 512) -> None:
        self._db = db
        self._max_batch = max_batch
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
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

    async def record(self, row: tuple[Any, ...]) -> None:
        """Return once the row is committed; raise if its commit failed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, future))
        self._wake.set()
        await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
                try:
                    async with self._db.transaction() as conn:
                        await repository.copy_scans(conn, [row for row, _ in batch])
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.error("scan records not committed", exc_info=exc)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.commits += 1
                self.recorded += len(batch)
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
            if self._stopping:
                return
