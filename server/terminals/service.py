"""The terminals domain's services, built at start-up, and the listener that reloads scene policies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from server.cache import follow
from server.core import Core
from server.observability import outage_log
from server.terminals.events import ScanEventSink
from server.terminals.policies import CHANNEL, ScenePolicies
from server.terminals.ports import (
    CodeCredentials,
    OfflineSettlement,
    ResidentNames,
    SceneDocuments,
    SceneLists,
)
from server.terminals.registry import TerminalService
from server.terminals.scans.claims import PRUNE_INTERVAL_S, claim_retention_s, prune_claims
from server.terminals.scans.guard import CacheScanGuard, RedisScanGuard, ScanGuard
from server.terminals.scans.recorder import ScanRecorder
from server.terminals.scans.service import ScanService

log = logging.getLogger("yima.terminals")


@dataclass
class Terminals:
    core: Core
    registry: TerminalService
    scans: ScanService
    guard: ScanGuard
    recorder: ScanRecorder
    documents: SceneDocuments
    lists: SceneLists
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(
        cls,
        core: Core,
        credentials: CodeCredentials,
        residents: ResidentNames,
        settlement: OfflineSettlement,
        events: ScanEventSink,
        documents: SceneDocuments,
        lists: SceneLists,
    ) -> Terminals:
        s = core.settings
        guard: ScanGuard = (
            RedisScanGuard(s.redis_url, s.redis_namespace) if s.redis_url else CacheScanGuard(core.cache)
        )
        recorder = ScanRecorder(core.db)
        recorder.start()
        policies = ScenePolicies()
        async with core.db.connection() as conn:
            await policies.load(conn)
        scans = ScanService(
            core,
            credentials,
            policies,
            guard,
            recorder,
            residents,
            settlement,
            documents,
            events=events,
        )
        terminals = cls(core, TerminalService(core), scans, guard, recorder, documents, lists)
        terminals._tasks.append(asyncio.create_task(terminals._listen(), name="terminals-listener"))
        terminals._tasks.append(asyncio.create_task(terminals._prune_claims(), name="replay-claims-pruner"))
        scans.outbox.start()
        return terminals

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.scans.outbox.close()
        await self.recorder.stop()
        await self.guard.close()
        self.scans.close()

    async def update_policy(self, **fields: object) -> None:
        async with self.core.db.transaction() as conn:
            await self.scans.policies.update(conn, **fields)  # type: ignore[arg-type]
        await self.reload_policies()
        await self.core.cache.publish(CHANNEL, b"policies")

    async def reload_policies(self) -> None:
        async with self.core.db.connection() as conn:
            await self.scans.policies.load(conn)

    async def _listen(self) -> None:
        async def on_message(message: bytes) -> None:
            if message == b"policies":
                await self.reload_policies()

        await follow(self.core.cache, CHANNEL, on_message)

    async def _prune_claims(self) -> None:
        """Every node runs this; the advisory lock in prune_claims lets one prune at a time. The terminal lists'
        expired entries are unbound and pruned in the same round."""
        retention_s = claim_retention_s(self.core.settings)
        while True:
            await asyncio.sleep(PRUNE_INTERVAL_S)
            try:
                await prune_claims(self.core.db, now=self.scans.clock(), retention_s=retention_s)
                await self.lists.prune_expired()  # terminal lists: no account kept past an entry's expiry
            except Exception as exc:
                # The next round tries again; an outage is counted, not logged per round and worker.
                outage_log.failed("database", f"replay claim pruning: {type(exc).__name__}")
