"""Wires the identity domain into the app."""

from __future__ import annotations

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.plugins import InitPluginProtocol

from server.auth.roles import Role
from server.cli_support import Commands
from server.identity.controllers import (
    AccountAdminController,
    AuthController,
    DevOutboxController,
    MeController,
)
from server.identity.service import GrantedRoles, IdentityService
from server.identity.sms import ConsoleSender, HttpGatewaySender, SmsSender
from server.plugins import StartOnce
from server.settings import Mode, Settings


def provide_identity(state: State) -> IdentityService:
    return state.identity  # type: ignore[no-any-return]


class IdentityPlugin(InitPluginProtocol):
    @staticmethod
    def add_cli_commands(commands: Commands) -> None:
        from server.identity.cli import add_commands

        add_commands(commands)

    granted_roles = GrantedRoles()
    """The role record the core's access guard reads (server/app.py hands it to CorePlugin)."""

    def __init__(self, settings: Settings, *, sms: SmsSender | None = None) -> None:
        self.settings = settings
        self.sms = sms or (
            HttpGatewaySender(settings.sms_gateway_url, settings.sms_gateway_secret)
            if settings.sms_gateway_url
            else ConsoleSender()
        )
        """The SMS gateway's adapter (the console sender under `yima dev` and in tests)."""
        self._started = StartOnce(self._start)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.extend([AuthController, MeController, AccountAdminController])
        if self.settings.mode is Mode.DEVELOPMENT:
            app_config.route_handlers.append(DevOutboxController)
        app_config.dependencies["identity"] = Provide(provide_identity, sync_to_thread=False)
        app_config.on_startup.append(self.started)
        app_config.on_shutdown.append(self._stop)
        return app_config

    async def started(self, app: Litestar) -> IdentityService:
        """The identity service (the ports of credentials, one-card and the platform), started once."""
        return await self._started(app)

    async def _start(self, app: Litestar) -> IdentityService:
        core = app.state.core
        app.state.identity = identity = IdentityService(
            core.settings,
            core.db,
            core.rate_limits,
            core.cipher,
            self.sms,
            core.tokens,
            core.derived_keys.otp,
            core.sessions,
            core.roles,
        )
        return identity

    async def seed_demo(self, app: Litestar) -> None:
        """The demo resident with a verified real name, the demo operator and the health authority."""
        from server.seed import (
            DEMO_AUTHORITY_PHONE,
            DEMO_OPERATOR_PHONE,
            DEMO_RESIDENT_ID,
            DEMO_RESIDENT_NAME,
            DEMO_RESIDENT_PHONE,
        )

        identity = await self.started(app)
        async with app.state.core.db.transaction() as conn:
            resident = await identity.account_id_for_phone(conn, DEMO_RESIDENT_PHONE, create=True)
            assert resident is not None  # created
            await identity.set_identity(conn, resident, DEMO_RESIDENT_NAME, DEMO_RESIDENT_ID)
            operator = await identity.account_id_for_phone(conn, DEMO_OPERATOR_PHONE, create=True)
            authority = await identity.account_id_for_phone(conn, DEMO_AUTHORITY_PHONE, create=True)
        assert operator is not None and authority is not None
        await identity.grant_role("seed", operator, Role.OPERATOR)
        await identity.grant_role("seed", authority, Role.HEALTH_AUTHORITY)

    async def _stop(self, app: Litestar) -> None:
        self._started.reset()
        await self.sms.close()
