"""The one guard: every route declares `opt=allow(...)`; anything undeclared is denied.

`allow("public")` admits anyone; `allow(Role.OPERATOR, ...)` admits accounts holding one of the roles;
`allow("terminal")` admits authenticated terminals. A revoked session (logout, disabled terminal) is refused
even while its access token has not expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from server.auth.roles import Role
from server.errors import Forbidden, Unauthorized

PUBLIC = "public"
TERMINAL = "terminal"
ANY_ACCOUNT = "any_account"


@dataclass(frozen=True)
class Principal:
    subject: str
    kind: str  # "account" or "terminal"
    roles: frozenset[str]
    session_id: str

    @property
    def account_id(self) -> int:
        if self.kind != "account":
            raise Forbidden("Only an account may do this")
        return int(self.subject)


def allow(*who: Role | str) -> dict[str, Any]:
    """Route option naming who may call the route."""
    return {"allow": frozenset(str(w) for w in who)}


async def route_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    allowed: frozenset[str] | None = handler.opt.get("allow")
    if allowed is None:
        raise Forbidden("This route declares no callers; denied by default")
    if PUBLIC in allowed:
        return
    auth = connection.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Send an access token: Authorization: Bearer <token>")
    core = connection.app.state.core
    claims = await core.tokens.verify(token.strip())
    if await core.sessions.is_ended(claims.session_id):
        raise Unauthorized("This session has ended; log in again", code="auth.session_ended")
    principal = Principal(claims.subject, claims.kind, claims.roles, claims.session_id)
    if principal.kind == "terminal":
        if TERMINAL not in allowed:
            raise Forbidden("Terminals may not call this route")
    elif not (ANY_ACCOUNT in allowed or principal.roles & allowed):
        raise Forbidden("Your roles do not allow this")
    connection.scope.setdefault("state", {})["principal"] = principal


def current_principal(request: Request[Any, Any, Any]) -> Principal:
    """Dependency: the caller the guard admitted."""
    principal = request.scope.get("state", {}).get("principal")
    if principal is None:
        raise Unauthorized()
    return principal
