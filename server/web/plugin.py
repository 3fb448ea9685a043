"""Serves the web surfaces as static files from this package, each under a strict Content-Security-Policy.

Layout (a surface appears when its folder exists):

    server/web/static/      -> /static/     shared assets (styles, i18n, the API client, yima.js)
    server/web/app/         -> /app/        the resident shell (index.html for the folder)
    server/web/console/     -> /console/    the operator console
    server/web/terminal/    -> /terminal/   the terminal page

Pages are plain HTML, CSS and JavaScript modules: nothing to build, so `make dev` needs no front-end tool chain.
The policy lets a page load and call only this origin; the shell alone may frame this origin's mini-app pages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Response
from litestar.config.app import AppConfig
from litestar.config.compression import CompressionConfig
from litestar.datastructures import CacheControlHeader
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.compression import CompressionMiddleware
from litestar.plugins import InitPluginProtocol
from litestar.router import Router
from litestar.static_files import create_static_files_router

from server.auth import allow
from server.auth.guards import PUBLIC

ROOT = Path(__file__).parent
SURFACES = ("app", "console", "terminal")

PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; font-src 'self'; "
    "connect-src 'self'; manifest-src 'self'; worker-src 'self'; media-src 'self' blob:; "
    "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)
"""Everything from this origin, nothing inline, nothing from elsewhere; mini-app pages (this origin) may be framed
by the shell, and no page may be framed by anyone."""

SECURITY_HEADERS = {
    "content-security-policy": PAGE_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "permissions-policy": "camera=(self), geolocation=(), microphone=()",
}


def _secured(response: Response[Any]) -> Response[Any]:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


# Pages and their assets go out gzipped (a first visit of the shell's code page: 70.8 KB before, 43.7 KB after,
# docs/benchmarks.md); only these routers, so the API's small, hot answers pay nothing for it.
_COMPRESSED = DefineMiddleware(
    CompressionMiddleware, config=CompressionConfig(backend="gzip", minimum_size=500)
)


def _router(path: str, folder: Path, *, html: bool) -> Router:
    return create_static_files_router(
        path=path,
        directories=[folder],
        html_mode=html,
        name=f"web{path.replace('/', '.')}",
        opt=allow(PUBLIC),
        include_in_schema=False,
        after_request=_secured,
        # Revalidated on every load (ETag / Last-Modified): a release reaches phones at once.
        cache_control=CacheControlHeader(no_cache=True),
        middleware=[_COMPRESSED],
    )


class WebPlugin(InitPluginProtocol):
    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.append(_router("/static", ROOT / "static", html=False))
        for surface in SURFACES:
            folder = ROOT / surface
            if folder.is_dir():
                app_config.route_handlers.append(_router(f"/{surface}", folder, html=True))
        return app_config
