"""OpenAPI entries for routes served by plain ASGI handlers.

Litestar builds its document from regular HTTP handlers only. A route served by an ASGI handler for speed
(server/terminals/scan_endpoint.py) declares its contract as a regular handler that is never routed; this module
hands those contracts' routes to the app's OpenAPI plugin, which then documents them like every other route, in
the same lazily built document. The contracts are registered on a small app of their own, which resolves them.
"""

from __future__ import annotations

from collections.abc import Sequence

from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig


def document_contracts(app: Litestar, contracts: Sequence[HTTPRouteHandler], config: OpenAPIConfig) -> None:
    """Document `contracts` in `app`'s OpenAPI document (tests/test_openapi.py fails if they go missing)."""
    holder = Litestar(route_handlers=list(contracts), openapi_config=config, logging_config=None)
    routes = holder.plugins.get(OpenAPIPlugin).included_routes
    app.plugins.get(OpenAPIPlugin).included_routes.update(
        {path: route for path, route in routes.items() if not path.startswith(config.path or "/schema")}
    )
