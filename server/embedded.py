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


class EmbeddedPostgres:
    """Starts (or attaches to) the server for `data_dir/pg`; stop() shuts it down if we were the last user."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = (data_dir / "pg").resolve()
        self._server: Any = None

    def start(self) -> str:
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # pgserver keeps its lock file in the runtime folder, read when it is imported.
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.pgdata.parent / "run"))
        Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
        import pgserver  # imported here: only the embedded default needs it

        self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        admin_uri = self._server.get_uri()
        asyncio.run(_ensure_database(admin_uri))
        return str(self._server.get_uri(DATABASE))

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


async def _ensure_database(admin_uri: str) -> None:
    conn = await asyncpg.connect(admin_uri)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await conn.close()
