"""The embedded PostgreSQL (the pgserver wheel) behind `yima dev`: a local data folder, reused across runs."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import asyncpg

log = logging.getLogger("yima.embedded")
DATABASE = "yima"


class _Held(logging.Handler):
    """Keeps pgserver's records (every initdb and pg_ctl command line and output) unless something fails."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def replay(self) -> None:
        for record in self.records:
            log.handle(record)
        self.records.clear()


class EmbeddedPostgres:
    """Starts (or attaches to) the server for `data_dir/pg`; stop() shuts it down if we were the last user.

    pgserver logs each initdb and pg_ctl run in full at INFO: dozens of lines on every start. They are held back
    and shown only when starting or stopping fails; a good start is one line.
    """

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = (data_dir / "pg").resolve()
        self._server: Any = None
        self._held = _Held()
        pg_log = logging.getLogger("pgserver")
        pg_log.addHandler(self._held)
        pg_log.propagate = False

    def start(self) -> str:
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # pgserver keeps its lock file in the runtime folder, read when it is imported.
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.pgdata.parent / "run"))
        Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
        fresh = not (self.pgdata / "PG_VERSION").exists()
        try:
            import pgserver  # imported here: only the embedded default needs it

            self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
            admin_uri = self._server.get_uri()
            asyncio.run(_ensure_database(admin_uri))
        except BaseException:
            self._held.replay()
            raise
        self._held.records.clear()
        log.info(
            "embedded PostgreSQL " + ("initialised and started" if fresh else "started"),
            extra={"pgdata": str(self.pgdata)},
        )
        return str(self._server.get_uri(DATABASE))

    def stop(self) -> None:
        if self._server is not None:
            try:
                self._server.cleanup()
            except BaseException:
                self._held.replay()
                raise
            self._held.records.clear()
            self._server = None


async def _ensure_database(admin_uri: str) -> None:
    conn = await asyncpg.connect(admin_uri)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await conn.close()
