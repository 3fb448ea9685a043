"""Wires the terminals domain into the app: it takes the plugins whose services its ports need (server/plugins.py)."""

from __future__ import annotations

from pathlib import Path

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.plugins import InitPluginProtocol

from server.cli_support import Commands
from server.plugins import Provides
from server.terminals.controllers.scans import ScanController, scan_endpoint
from server.terminals.controllers.terminals import TerminalAdminController, TerminalTokenController
from server.terminals.events import NoScanEvents, ScanEventSink
from server.terminals.key_file import write_key_file
from server.terminals.ports import (
    CodeCredentials,
    OfflineSettlement,
    ResidentNames,
    SceneDocuments,
    SceneLists,
)
from server.terminals.service import Terminals
from server.wire import b64url

DEMO_TERMINAL_KEY_FILE = "demo-clinic-terminal.json"


def provide_terminals(state: State) -> Terminals:
    return state.terminals  # type: ignore[no-any-return]


class TerminalsPlugin(InitPluginProtocol):
    def __init__(
        self,
        *,
        identity: Provides[ResidentNames],
        credentials: Provides[CodeCredentials],
        settlement: Provides[OfflineSettlement],
        documents: Provides[SceneDocuments],
        lists: Provides[SceneLists],
        events: ScanEventSink | None = None,
    ) -> None:
        self._identity, self._credentials, self._settlement = identity, credentials, settlement
        self._documents, self._lists = documents, lists
        self._events: ScanEventSink = events or NoScanEvents()

    @staticmethod
    def add_cli_commands(commands: Commands) -> None:
        from server.terminals.cli import add_commands

        add_commands(commands)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.extend(
            [TerminalAdminController, TerminalTokenController, ScanController, scan_endpoint]
        )
        app_config.dependencies["terminals"] = Provide(provide_terminals, sync_to_thread=False)
        app_config.on_startup.append(self._start)
        app_config.on_shutdown.insert(0, self._stop)
        return app_config

    async def _start(self, app: Litestar) -> None:
        app.state.terminals = await Terminals.start(
            app.state.core,
            await self._credentials.started(app),
            await self._identity.started(app),
            await self._settlement.started(app),
            self._events,
            await self._documents.started(app),
            await self._lists.started(app),
        )

    async def _stop(self, app: Litestar) -> None:
        terminals: Terminals | None = getattr(app.state, "terminals", None)
        if terminals is not None:
            await terminals.stop()

    async def seed_demo(self, app: Litestar) -> None:
        """A demo clinic terminal; its private key goes to the dev data folder so a simulator can sign with it."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import (
            Encoding,
            NoEncryption,
            PrivateFormat,
            PublicFormat,
        )

        core = app.state.core
        path = Path(core.settings.data_dir) / DEMO_TERMINAL_KEY_FILE
        if path.exists():
            return
        key = Ed25519PrivateKey.generate()

        terminals: Terminals = app.state.terminals
        async with core.db.transaction() as conn:
            info = await terminals.registry.register(
                conn,
                actor="seed",
                name="Guangde People's Hospital, entrance",
                kind="clinic",
                scene="guangde-peoples-hospital",
                public_key=b64url(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)),
            )
        roots = await terminals.registry.root_public_keys()
        write_key_file(
            path,
            {
                "terminal_id": info.id,
                "private_key": b64url(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())),
                "token_endpoint": terminals.registry.token_endpoint,
                # pinned by `yima terminal scan --offline`, as an enrolled terminal pins them
                "root_public_keys": {kid: b64url(raw) for kid, raw in roots.items()},
                "pass_issuer": terminals.registry.pass_issuer,  # as the enrolment answer names it
            },
        )
