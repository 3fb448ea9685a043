"""The API docs page at /schema: Swagger UI served from this server's own assets, no other origin involved.

The assets come from the version-pinned `swagger-ui-py` wheel (pyproject.toml), which ships the Swagger UI
distribution as static files; only the few the page needs are served. Litestar's own render plugins load their
bundles, fonts and favicon from public CDNs, which a county intranet cannot reach: the page stayed blank there.
The page's Content-Security-Policy (set on the /schema router in app.py) lets the browser load nothing from
elsewhere either, and the validator badge (which calls a public validator) is switched off.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

from litestar import Request, Response, Router, get
from litestar.constants import OPENAPI_JSON_HANDLER_NAME
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.params import FromPath
from litestar.response import File

from server.errors import Unavailable

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
"""Swagger UI sets inline styles and draws icons from data: URLs; everything else comes from this origin."""

_INIT_JS = b"""\
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapi,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
"""


@functools.cache
def _swagger_ui_dir() -> Path:
    # Found on first use, not at start-up: an environment installed before this dependency still serves the API.
    # The wheel's package imports web-framework adapters on import; only its files are wanted.
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable(
            "The API docs need the swagger-ui-py package: reinstall yima", code="docs.unavailable"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "static"


_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


class ApiDocsPage(OpenAPIRenderPlugin):
    """Swagger UI at the schema router's root, its assets under `<router>/assets/`."""

    def __init__(self) -> None:
        super().__init__(path="/")
        self.assets = "/schema/assets"

    def receive_router(self, router: Router) -> None:
        self.assets = f"{router.path.rstrip('/')}/assets"

        @get("/assets/{name:str}", sync_to_thread=False, cache_control=CacheControlHeader(max_age=86400))
        def asset(name: FromPath[str]) -> Response[Any]:
            if name == "api-docs.js":  # ours: the page's start-up, kept out of the page for the CSP
                return Response(_INIT_JS, media_type="text/javascript")
            if name not in _ASSETS:
                raise NotFoundException()
            return File(_swagger_ui_dir() / name, media_type=_ASSETS[name], content_disposition_type="inline")

        router.register(asset)

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = openapi_schema["info"]["title"]
        openapi_json = request.app.route_reverse(OPENAPI_JSON_HANDLER_NAME)
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="referrer" content="no-referrer">
  <title>{title} API</title>
  <link rel="icon" type="image/png" href="{self.assets}/favicon-32x32.png">
  <link rel="stylesheet" href="{self.assets}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-openapi="{openapi_json}"></div>
  <script src="{self.assets}/swagger-ui-bundle.js"></script>
  <script src="{self.assets}/api-docs.js"></script>
</body>
</html>
""".encode()
