"""Wires the operations routes into the app."""

from litestar.config.app import AppConfig
from litestar.plugins import InitPluginProtocol

from server.ops.controllers import health, live, metrics


class OpsPlugin(InitPluginProtocol):
    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.extend([health, live, metrics])
        return app_config
