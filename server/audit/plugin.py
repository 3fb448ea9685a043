"""Wires the audit domain into the app: the checkpoint route, and checkpoints published on a schedule."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.plugins import InitPluginProtocol

from server.audit.controllers import AuditAdminController, AuditCheckpointController
from server.audit.signing import publish_checkpoint
from server.cli_support import Commands
from server.core import Core
from server.observability import outage_log

log = logging.getLogger("yima.audit")

__all__ = ["AuditPlugin", "publish_checkpoint"]


class AuditPlugin(InitPluginProtocol):
    @staticmethod
    def add_cli_commands(commands: Commands) -> None:
        from server.audit.cli import add_commands

        add_commands(commands)

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.extend([AuditCheckpointController, AuditAdminController])
        app_config.on_startup.append(self._start)
        app_config.on_shutdown.insert(0, self._stop)
        return app_config

    async def _start(self, app: Litestar) -> None:
        self._task = asyncio.create_task(self._schedule(app.state.core), name="audit-checkpoints")

    async def _stop(self, app: Litestar) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _schedule(self, core: Core) -> None:
        while True:
            await asyncio.sleep(core.settings.audit_checkpoint_interval_s)
            try:
                await publish_checkpoint(core)
            except Exception as exc:
                # The next round tries again; an outage is counted, not logged per round and worker.
                outage_log.failed("database", f"audit checkpoint: {type(exc).__name__}")
