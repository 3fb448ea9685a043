"""Rows many callers write at once, written by one statement at a time (first uses of an app: a burst of residents
opening it waits on a few inserts, not one each)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from server.db import Database


class GroupWrite:
    """Rows written by one statement at a time: what arrives while a write is in flight goes in the next, and each
    `add` returns once its row is committed (or raises what the write raised)."""

    def __init__(
        self, db: Database, write: Callable[[asyncpg.Connection, list[Any]], Awaitable[None]]
    ) -> None:
        self._db = db
        self._write = write
        self._pending: list[tuple[Any, asyncio.Future[None]]] = []
        self._running = False
        self._task: asyncio.Task[None] | None = None

    async def add(self, row: Any) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, done))
        if not self._running:
            self._running = True
            self._task = asyncio.ensure_future(self._drain())
        await asyncio.shield(done)

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    async with self._db.connection() as conn:
                        await self._write(conn, [row for row, _ in batch])
                except BaseException as exc:  # each waiter gets the failure; the next batch tries again
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                    if not isinstance(exc, Exception):
                        raise
                else:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._running = False
