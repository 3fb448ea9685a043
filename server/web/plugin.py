"""Serves the web surfaces as static files from this package, each under a strict Content-Security-Policy.

Layout (a surface appears when its folder exists):

    server/web/static/      -> /static/     shared assets (styles, i18n, the API client)
    yima_sdk/web/shared/    -> /static/     yima.js and miniapp-host.js, the SDK's (one copy for core and yima-sdk dev)
    server/web/app/         -> /app/        the resident shell (index.html for the folder)
    server/web/console/     -> /console/    the operator console
    server/web/terminal/    -> /terminal/   the terminal page

Pages are plain HTML, CSS and JavaScript modules: nothing to build, so `make dev` needs no front-end tool chain.
The policy lets a page load and call only this origin; the shell alone may frame this origin's mini-app pages.
"""

from __future__ import annotations

from importlib import resources
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
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from server.auth import allow
from server.auth.guards import PUBLIC

ROOT = Path(__file__).parent
SDK_SHARED = Path(str(resources.files("yima_sdk") / "web" / "shared"))
"""`yima.js` (an app's page) and `miniapp-host.js` (the shell's side), shipped by yima-sdk for `yima-sdk dev`."""
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


_NOT_SENT_ON_304 = frozenset({b"content-length", b"content-type", b"content-encoding", b"transfer-encoding"})


def _etags(header: str) -> set[str]:
    """The entity tags of an If-None-Match header, compared weakly (RFC 9110 13.1.2): W/ does not count."""
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def _revalidated(app: ASGIApp) -> ASGIApp:
    """Answer 304 Not Modified, without the body, to a GET or HEAD whose If-None-Match names the file's ETag."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
            await app(scope, receive, send)
            return
        asked = b", ".join(v for k, v in scope["headers"] if k == b"if-none-match").decode("latin-1")
        if not asked:
            await app(scope, receive, send)
            return
        held = _etags(asked)
        not_modified = False

        async def send_or_not_modified(message: Message) -> None:
            nonlocal not_modified
            if message["type"] == "http.response.start" and message["status"] == 200:
                headers = list(message.get("headers", []))
                etag = next((v.decode("latin-1") for k, v in headers if k.lower() == b"etag"), None)
                if etag is not None and ("*" in held or etag.removeprefix("W/") in held):
                    not_modified = True
                    kept = [(k, v) for k, v in headers if k.lower() not in _NOT_SENT_ON_304]
                    await send({"type": "http.response.start", "status": 304, "headers": kept})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
            if not_modified:
                return  # the file's body: already answered without it
            await send(message)

        await app(scope, receive, send_or_not_modified)

    return middleware


def _router(path: str, *folders: Path, html: bool) -> Router:
    return create_static_files_router(
        path=path,
        directories=list(folders),
        html_mode=html,
        name=f"web{path.replace('/', '.')}",
        opt=allow(PUBLIC),
        include_in_schema=False,
        after_request=_secured,
        # Revalidated on every load (If-None-Match with the file's ETag, answered 304 while it is unchanged): a
        # release reaches phones at once, and an unchanged file is not sent again.
        cache_control=CacheControlHeader(no_cache=True),
        middleware=[_revalidated, _COMPRESSED],
    )


class WebPlugin(InitPluginProtocol):
    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        # /static also serves the mini-app page scripts from the SDK, their one copy (yima-sdk dev serves it too)
        app_config.route_handlers.append(_router("/static", ROOT / "static", SDK_SHARED, html=False))
        for surface in SURFACES:
            folder = ROOT / surface
            if folder.is_dir():
                app_config.route_handlers.append(_router(f"/{surface}", folder, html=True))
        return app_config
