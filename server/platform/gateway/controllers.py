"""The gateway into each mini-app: `/v1/miniapps/{app_id}/api/{path}` as the resident or with an app session."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from litestar import Controller, Request, Response, route
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Operation, Schema
from litestar.params import FromPath
from litestar.response.base import ASGIResponse
from litestar.types import Receive

from server.auth import allow
from server.auth.guards import ANY_ACCOUNT, APP_SESSION, PUBLIC, Principal
from server.errors import AppError, Unauthorized, raises
from server.platform import errors as e
from server.platform.gateway.service import Answer
from server.platform.gateway.sessions import AppSessionExpired, AppSessionInvalid
from server.platform.service import Platform, PlatformDep

APP_ANSWER = OpenAPIMediaType(schema=Schema(description="The app's own body, in the media type it chose"))


@dataclass
class _AppAnswers(Operation):
    """A gateway call's answers: besides the gateway's own problem+json failures, the app's own answer passes
    through with the app's status and media type (docs/sdk.md: `Response.json({...}, status=404)`)."""

    def __post_init__(self) -> None:
        answers = {
            status: response
            for status, response in (self.responses or {}).items()
            if not status.startswith("2")  # Litestar's guess at a success; the app decides it
        }
        for response in answers.values():
            if isinstance(response, OpenAPIResponse):
                response.content = {**(response.content or {}), "*/*": APP_ANSWER}
        answers["default"] = OpenAPIResponse(
            description="The app's own answer: its status, headers and body as the app sent them",
            content={"*/*": APP_ANSWER},
        )
        self.responses = answers


class GatewayController(Controller):
    path = "/v1/miniapps"
    tags = ["miniapps"]

    # Named to sort before `call`: a controller registers its handlers in name order, and a path whose first
    # handler lacks OPTIONS gets Litestar's automatic one, which wins over this (and access control refuses it).
    @route(
        "/{app_id:str}/api/{path:path}",
        http_method=["OPTIONS"],
        opt=allow(PUBLIC),
        include_in_schema=False,
    )
    async def answer_preflight(self) -> Response[None]:
        """CORS preflight of a page's call: app pages run with an opaque origin (sandboxed), so every call they
        make is cross-origin. Bearer tokens only, never cookies: answering any origin lends nobody a credential."""
        return Response(None, status_code=204, headers=GATEWAY_PREFLIGHT)

    @route(
        "/{app_id:str}/api/{path:path}",
        http_method=["GET", "POST", "PUT", "DELETE", "PATCH"],
        opt=allow(ANY_ACCOUNT, APP_SESSION)
        | raises(
            *e.GATEWAY_ERRORS, AppSessionInvalid, AppSessionExpired, (Unauthorized, "auth.session_ended")
        ),
        operation_id=lambda handler, method, path: f"callMiniapp{method.capitalize()}",
        operation_class=_AppAnswers,
    )
    async def call(
        self,
        request: Request[Any, Any, Any],
        app_id: FromPath[str],
        path: FromPath[str],
        platform: PlatformDep,
    ) -> ASGIResponse:
        """Call a mini-app's route as yourself, with your access token or with an app session of this app (what
        its page holds): the app sees only its own pseudonymous id for you."""
        try:
            answer = await self._call(request, app_id, path, platform)
        except AppError as exc:  # a page must read the problem's code too (e.g. miniapp.session_expired)
            exc.headers = {**exc.headers, **GATEWAY_CORS}
            raise
        # Litestar appends `; charset=utf-8` to a text/ type itself (text/csv is the app's UTF-8 CSV)
        media = answer.headers.pop("content-type", "application/octet-stream").split(";", 1)[0]
        answer.headers.update(GATEWAY_CORS)
        # The app's bytes as they are, so Litestar's own response layer (a Response rendered into this) is skipped:
        # on the hottest route that is ~10 µs of CPU per call (docs/benchmarks.md).
        return ASGIResponse(
            body=answer.body, status_code=answer.status, headers=answer.headers, media_type=media
        )

    async def _call(
        self, request: Request[Any, Any, Any], app_id: str, path: str, platform: Platform
    ) -> Answer:
        principal = request.scope.get("user")
        if isinstance(principal, Principal):
            account_id = principal.account_id
        else:  # access control let an app session through: it holds for this app only
            token = request.headers.get("authorization", "").partition(" ")[2].strip()
            account_id = await platform.app_sessions.verify(token, app_id)
        body = await request.body()
        answer = await platform.gateway.call(
            account_id,
            app_id,
            request.method,
            path if path.startswith("/") else "/" + path,
            dict(request.query_params),
            {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.scope["headers"]},
            body,
            functools.partial(_hung_up, request.receive),
        )
        return answer


async def _hung_up(receive: Receive) -> None:
    """Return once the client has disconnected. Awaited after the whole body was read, when the only message the
    server still sends is `http.disconnect` (ASGI), and only while the call waits for one of the app's workers."""
    while (await receive())["type"] != "http.disconnect":
        pass


GATEWAY_CORS = {
    "access-control-allow-origin": "*",
    "access-control-expose-headers": "etag, retry-after, content-disposition",
}
GATEWAY_PREFLIGHT = {
    **GATEWAY_CORS,
    "access-control-allow-methods": "GET, POST, PUT, DELETE, PATCH",
    "access-control-allow-headers": "authorization, content-type, accept, if-match, if-none-match",
    "access-control-max-age": "600",
}
