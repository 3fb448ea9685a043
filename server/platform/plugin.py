"""Wires the mini-app platform into the app: routes, the `platform` dependency, the sandbox host's lifecycle
and the scan-event sink the terminals domain calls."""

from __future__ import annotations

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.plugins import InitPluginProtocol

from server.cli_support import Commands
from server.platform.app_ids.controllers import AppIdAdminController, AppIdRequestController
from server.platform.apps.controllers import DeveloperController, MiniAppAdminController
from server.platform.apps.dev import DevApps
from server.platform.config import PlatformSettings
from server.platform.device_login.controllers import DeviceLoginController
from server.platform.gateway.controllers import GatewayController
from server.platform.ports import Accounts, HealthCodes, Payments
from server.platform.residents.controllers import ResidentPlatformController
from server.platform.runtime.events import PlatformScanSink
from server.platform.service import Platform
from server.platform.staff.controllers import MyStaffController, StaffController
from server.platform.terminal_documents.service import TerminalDocuments
from server.platform.terminal_lists.service import TerminalLists
from server.platform.ui.controllers import MiniappPagesController
from server.plugins import Provides, StartOnce
from server.seed import DEMO_OPERATOR_PHONE
from server.settings import Settings


def provide_platform(state: State) -> Platform:
    return state.platform  # type: ignore[no-any-return]


class PlatformPlugin(InitPluginProtocol):
    @staticmethod
    def add_cli_commands(commands: Commands) -> None:
        from server.platform.jobs.cli import add_commands

        add_commands(commands)

    def __init__(
        self,
        settings: Settings,
        *,
        identity: Provides[Accounts],
        credentials: Provides[HealthCodes],
        onecard: Provides[Payments],
        config: PlatformSettings | None = None,
    ) -> None:
        self.config = config or PlatformSettings.for_server(settings)
        """Replaceable before start-up (tests narrow worker counts and point apps_dir somewhere traversable)."""
        self.identity, self.credentials, self.onecard = identity, credentials, onecard
        """The plugins whose services answer the platform's ports (server/platform/ports.py)."""
        self.sink = PlatformScanSink()
        self.dev_apps = settings.dev_apps
        self._dev: DevApps | None = None
        self._started = StartOnce(self._start)
        self.documents = _Documents(self)
        """Provides the terminals' SceneDocuments port: the apps' terminal documents (`ctx.terminals`)."""
        self.lists = _Lists(self)
        """Provides the terminals' SceneLists port: the apps' terminal lists (`ctx.terminals.hold`)."""

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.extend(
            [
                DeveloperController,
                DeviceLoginController,
                AppIdRequestController,
                AppIdAdminController,
                MiniAppAdminController,
                ResidentPlatformController,
                GatewayController,
                MiniappPagesController,
                StaffController,
                MyStaffController,
            ]
        )
        app_config.dependencies["platform"] = Provide(provide_platform, sync_to_thread=False)
        app_config.on_startup.append(self.started)
        app_config.on_shutdown.insert(0, self._stop)
        return app_config

    async def started(self, app: Litestar) -> Platform:
        """The platform, started once (by its own start-up hook, or first by a plugin that needs it)."""
        return await self._started(app)

    async def _start(self, app: Litestar) -> Platform:
        accounts = await self.identity.started(app)
        platform = await Platform.start(
            app.state.core,
            self.config,
            user_id_key=app.state.core.derived_keys.app_user_id,
            accounts=accounts,
            codes=await self.credentials.started(app),
            payments=await self.onecard.started(app),
        )
        app.state.platform = self.sink.platform = platform
        if self.dev_apps:
            # the demo operator owns, reviews and releases local folders (yima dev seeds that account)
            self._dev = DevApps(platform, accounts, DEMO_OPERATOR_PHONE, self.dev_apps)
            await self._dev.start()
        return platform

    async def _stop(self, app: Litestar) -> None:
        if self._dev is not None:
            await self._dev.close()
        self.sink.platform = None
        await self.sink.close()
        platform: Platform | None = getattr(app.state, "platform", None)
        if platform is not None:
            await platform.close()
        self._started.reset()


class _Documents:
    """The platform's terminal documents, for the plugins whose ports need them (the terminals')."""

    def __init__(self, plugin: PlatformPlugin) -> None:
        self._plugin = plugin

    async def started(self, app: Litestar) -> TerminalDocuments:
        return (await self._plugin.started(app)).caps.documents


class _Lists:
    """The platform's terminal lists, for the plugins whose ports need them (the terminals')."""

    def __init__(self, plugin: PlatformPlugin) -> None:
        self._plugin = plugin

    async def started(self, app: Litestar) -> TerminalLists:
        return (await self._plugin.started(app)).caps.lists
