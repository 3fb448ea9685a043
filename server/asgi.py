"""Entry point for ASGI servers: `uvicorn --factory server.asgi:app_factory` (settings from YIMA_* variables)."""

from litestar import Litestar

from server.app import create_app
from server.observability import configure_logging
from server.settings import check_can_serve, load_settings


def app_factory() -> Litestar:
    settings = load_settings()
    check_can_serve(settings)
    configure_logging(settings.log_level)
    return create_app(settings)
