"""Terminal documents: the `terminals` capability, by which an app publishes versioned documents for the
terminals of its scenes (the bus app's fare table), and what the terminals domain asks of them.

    ctx.terminals.publish("fares", 2, effective_from, table)  -> DocumentVersion   (immutable per version)
    ctx.terminals.published("fares")                          -> [DocumentVersion]

Each version is signed once, when published, by the trust-list root (`yima_sdk.documents`: the keys terminals pin
for their trust list) and kept with its envelope. A terminal of a scene bound to the app fetches them
(`GET /v1/terminal/documents`), checks the signature and the app id, and applies the version in force. The
platform reads one document itself: `fares` (`yima_sdk.contract.FARES_DOCUMENT`), by which settlement re-prices
an offline ride with the fare table in force when it happened (`fare_schedule`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import asyncpg
from yima_sdk import contract as c
from yima_sdk.documents import sign_document
from yima_sdk.errors import QuotaExceeded, VersionConflict
from yima_sdk.fares import FareSchedule, FareTable

from server.core import Core
from server.keys.service import ROOT_PURPOSE
from server.platform.terminal_documents import repository as repo


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


class TerminalDocuments:
    """The `terminals` capability, and the terminals domain's port onto the documents of a scene's app."""

    def __init__(self, core: Core, max_versions: int = c.MAX_DOCUMENT_VERSIONS) -> None:
        self.core = core
        self.max_versions = max_versions
        self.clock: Callable[[], float] = time.time

    async def handle(self, app_id: str, op: c.TerminalsPublish | c.TerminalsPublished) -> Any:
        if isinstance(op, c.TerminalsPublished):
            async with self.core.db.connection() as conn:
                rows = await repo.versions(conn, app_id, op.name)
            return [
                c.DocumentVersion(
                    name=op.name, version=r["version"], effective_from=int(r["effective_from"].timestamp())
                )
                for r in rows
            ]
        return await self._publish(app_id, op)

    async def _publish(self, app_id: str, op: c.TerminalsPublish) -> c.DocumentVersion:
        content = c.check_document(op)
        reply = c.DocumentVersion(name=op.name, version=op.version, effective_from=op.effective_from)
        effective_from = _utc(op.effective_from)
        async with self.core.db.transaction() as conn:
            await repo.lock(conn, app_id, op.name)
            held = await repo.version(conn, app_id, op.name, op.version)
            if held is not None:
                if (held["effective_from"], bytes(held["content"])) != (effective_from, content):
                    raise VersionConflict(f"{op.name} version {op.version} is published with other content")
                return reply  # the same publication again (a retried call)
            published = await repo.count(conn, app_id, op.name)
            if published >= self.max_versions:
                raise QuotaExceeded(f"at most {self.max_versions} versions of {op.name} may be published")
            now = self.clock()
            c.check_effective_from(op, now, first=published == 0)
            root = await self.core.keys.active(ROOT_PURPOSE)
            envelope = sign_document(
                app_id=app_id, name=op.name, version=op.version, effective_from=op.effective_from,
                content=content, issued_at=int(now), root_private_key=root.private_key, root_key_id=root.kid,
            )  # fmt: skip
            await repo.insert(conn, app_id, op.name, op.version, effective_from, content, envelope, _utc(now))
        return reply

    # ---- the terminals domain's port (server.terminals: SceneDocuments) -------------------------------

    async def envelopes(self, kind: str, scene: str) -> list[bytes]:
        """Every published version of every document of the scene's app, each its signed envelope."""
        async with self.core.db.connection() as conn:
            return await repo.envelopes(conn, kind, scene)

    async def fare_schedule(self, conn: asyncpg.Connection, kind: str, scene: str) -> FareSchedule | None:
        """The scene's app's published fare tables (every version), None when it published none; read on `conn`
        (the binding too, not this process's view of it, so every worker re-prices alike)."""
        contents = await repo.contents(conn, kind, scene, c.FARES_DOCUMENT)
        return FareSchedule(FareTable.from_json(content) for content in contents) if contents else None
