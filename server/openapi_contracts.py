"""OpenAPI entries for routes served by plain ASGI handlers.

Litestar builds its document from regular HTTP handlers only. A route served by an ASGI handler for speed
(server/terminals/controllers/scans.py) declares its contract as a regular handler that is never routed. This module
routes those contracts on a small app of their own (once per process) and hands the resulting routes to the real
app's route plugins, as Litestar does for every route it registers: the OpenAPI plugin then documents them like
every other route, in the same lazily built document, and the error-responses plugin adds their errors.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute


def document_contracts(app: Litestar, *contracts: HTTPRouteHandler) -> None:
    """Document `contracts` in `app`'s OpenAPI document (tests/test_openapi.py fails if they go missing)."""
    for route in _contract_routes(contracts):
        for plugin in app.plugins.receive_route:
            plugin.receive_route(route)


def _contract_routes(contracts: tuple[HTTPRouteHandler, ...]) -> list[HTTPRoute]:
    cached = _cache.get(contracts)
    if cached is None:
        holder = Litestar(route_handlers=list(contracts), openapi_config=None, logging_config=None)
        cached = _cache[contracts] = [route for route in holder.routes if isinstance(route, HTTPRoute)]
    return cached


_cache: dict[tuple[HTTPRouteHandler, ...], list[HTTPRoute]] = {}
