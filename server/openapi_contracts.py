"""OpenAPI entries for routes served by plain ASGI handlers.

Litestar builds its document from regular HTTP handlers only. A route served by an ASGI handler for speed
(server/terminals/scan_endpoint.py) declares its contract as a regular handler that is never routed; this module
hands those contracts' routes to the app's OpenAPI plugin, which then documents them like every other route, in
the same lazily built document. The contracts are registered once per process, on a small app of their own that
resolves them.
"""

from __future__ import annotations

from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.routes import HTTPRoute


def document_contracts(app: Litestar, *contracts: HTTPRouteHandler) -> None:
    """Document `contracts` in `app`'s OpenAPI document (tests/test_openapi.py fails if they go missing)."""
    config = app.openapi_config
    assert config is not None
    app.plugins.get(OpenAPIPlugin).included_routes.update(_contract_routes(contracts, config))


def _contract_routes(contracts: tuple[HTTPRouteHandler, ...], config: OpenAPIConfig) -> dict[str, HTTPRoute]:
    cached = _cache.get(contracts)
    if cached is None:
        # What shapes an operation (docstrings, operation ids), not the app's schema router: a router belongs
        # to one app.
        own = OpenAPIConfig(
            title=config.title,
            version=config.version,
            use_handler_docstrings=config.use_handler_docstrings,
            operation_id_creator=config.operation_id_creator,
        )
        holder = Litestar(route_handlers=list(contracts), openapi_config=own, logging_config=None)
        routes = holder.plugins.get(OpenAPIPlugin).included_routes
        schema = config.path or "/schema"
        cached = _cache[contracts] = {p: r for p, r in routes.items() if not p.startswith(schema)}
    return cached


_cache: dict[tuple[HTTPRouteHandler, ...], dict[str, HTTPRoute]] = {}
