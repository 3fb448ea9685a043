"""HTTP routes of mini-app pages: the `ui/` bundle of the released version (or of a named live version, for a
resident in a phased release) under the page policy of yima_sdk.ui_bundle."""

from __future__ import annotations

from typing import Any, TypeAlias

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from yima_sdk.ui_bundle import page_headers

from server.auth import allow
from server.auth.guards import PUBLIC
from server.platform.service import Platform

PlatformDep: TypeAlias = NamedDependency[Platform]


async def _serve(
    request: Request[Any, Any, Any], platform: Platform, app_id: str, version: str | None, path: str
) -> Response[bytes]:
    found = await platform.ui.file(app_id, version, path)
    headers = page_headers(f"{request.url.scheme}://{request.url.netloc}", app_id)
    headers["etag"] = found.etag
    if request.headers.get("if-none-match") == found.etag:
        return Response(b"", status_code=304, headers=headers)
    return Response(found.body, headers=headers, media_type=found.media_type)


class MiniappPagesController(Controller):
    path = "/miniapps"
    include_in_schema = False
    opt = allow(PUBLIC)  # static pages; everything they do goes through the gateway with an app session

    @get(["/{app_id:str}/ui/", "/{app_id:str}/ui/{path:path}"])
    async def page(
        self,
        request: Request[Any, Any, Any],
        app_id: FromPath[str],
        platform: PlatformDep,
        path: FromPath[str] = "/",
    ) -> Response[bytes]:
        """A file of the app's released page bundle (`/` is ui/index.html)."""
        return await _serve(request, platform, app_id, None, path)

    @get(["/{app_id:str}/versions/{version:str}/ui/", "/{app_id:str}/versions/{version:str}/ui/{path:path}"])
    async def versioned_page(
        self,
        request: Request[Any, Any, Any],
        app_id: FromPath[str],
        version: FromPath[str],
        platform: PlatformDep,
        path: FromPath[str] = "/",
    ) -> Response[bytes]:
        """A file of one live version's bundle: the shell opens the version the catalog gave the resident."""
        return await _serve(request, platform, app_id, version, path)
