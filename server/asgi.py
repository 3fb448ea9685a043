"""Entry point for ASGI servers: `uvicorn --factory server.asgi:app_factory` (settings from YIMA_* variables)."""

import gc

from litestar import Litestar

from server.app import create_app
from server.observability import configure_logging
from server.settings import check_can_serve, load_settings

GC_GEN0_THRESHOLD = 20_000
"""Allocations between young collections (CPython's default is 700). A request allocates a few hundred
objects that die with it; collecting every 700 allocations promoted live request objects into the older
generations, whose full collections then paused a worker for up to ~50 ms under load."""


def _tune_gc() -> None:
    """Once the app has started: freeze what start-up built (settings, routes, keys, caches), so full
    collections no longer walk it, and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def app_factory() -> Litestar:
    settings = load_settings()
    check_can_serve(settings)
    configure_logging(settings.log_level)
    app = create_app(settings)
    app.on_startup.append(_tune_gc)  # after every plugin's start-up hook
    return app
