"""Wires the credentials domain into the app."""

from __future__ import annotations

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.plugins import InitPluginProtocol

from server.cli_support import Commands
from server.credentials import repository
from server.credentials.controllers import (
    AnkangCodeController,
    HealthAuthorityController,
    PartnerKeyController,
    RevocationController,
    TrustListController,
)
from server.credentials.ports import Residents
from server.credentials.service import Credentials
from server.plugins import Provides, StartOnce


def provide_credentials(state: State) -> Credentials:
    return state.credentials  # type: ignore[no-any-return]


class CredentialsPlugin(InitPluginProtocol):
    def __init__(self, *, identity: Provides[Residents]) -> None:
        self.identity = identity
        """The plugin whose service answers health status's Residents port."""
        self._started = StartOnce(self._start)

    @staticmethod
    def add_cli_commands(commands: Commands) -> None:
        from server.credentials.cli import add_commands

        add_commands(commands)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.extend(
            [
                AnkangCodeController,
                TrustListController,
                PartnerKeyController,
                RevocationController,
                HealthAuthorityController,
            ]
        )
        app_config.dependencies["credentials"] = Provide(provide_credentials, sync_to_thread=False)
        app_config.on_startup.append(self.started)
        app_config.on_shutdown.insert(0, self._stop)
        return app_config

    async def started(self, app: Litestar) -> Credentials:
        """The credentials services (the platform's HealthCodes port), started once."""
        return await self._started(app)

    async def _start(self, app: Litestar) -> Credentials:
        core = app.state.core
        credentials = Credentials.build(
            core,
            await self.identity.started(app),
            subject_ref_key=core.derived_keys.ankang_subject_ref,
        )
        await credentials.start(core)
        app.state.credentials = credentials
        return credentials

    async def _stop(self, app: Litestar) -> None:
        self._started.reset()
        credentials: Credentials | None = getattr(app.state, "credentials", None)
        if credentials is not None:
            await credentials.stop()

    async def seed_demo(self, app: Litestar) -> None:
        """Demo resident: green, so `yima dev` shows a code at once."""
        from server.seed import DEMO_RESIDENT_ID

        credentials: Credentials = app.state.credentials
        async with app.state.core.db.connection() as conn:
            index = app.state.core.cipher.blind_index("id_number", DEMO_RESIDENT_ID)
            has = await repository.has_status(conn, index)
        if not has:
            await credentials.health.set_status(
                actor="seed", id_number=DEMO_RESIDENT_ID, colour="green", reason="demo", effective_at=None
            )
