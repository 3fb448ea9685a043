"""Access control: every route declares `opt=allow(...)`; anything undeclared is denied.

`allow("public")` admits anyone; `allow(Role.OPERATOR, ...)` admits accounts holding one of the roles;
`allow("terminal")` admits authenticated terminals. A revoked session (logout, disabled terminal) is refused
even while its access token has not expired.

An app session token (`yas_...`, what a mini-app's page holds: server/platform/gateway/sessions.py) is refused here
on every route but those that name `APP_SESSION`, which check it themselves against the app in their path
(only the gateway does). Its audience differs from an access token's too, so it never passes as one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.types import ASGIApp, Receive, Scope, Send

from server.auth.roles import Role
from server.errors import Forbidden, Unauthorized

PUBLIC = "public"
TERMINAL = "terminal"
ANY_ACCOUNT = "any_account"
APP_SESSION = "app_session"
APP_SESSION_PREFIX = "yas_"


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

    @property
    def actor(self) -> str:
        """How the audit log names this caller: `account:42`, `terminal:<id>`."""
        return f"{self.kind}:{self.subject}"


def allow(*who: Role | str) -> dict[str, Any]:
    """Route option naming who may call the route."""
    return {"allow": frozenset(str(w) for w in who)}


async def authorize(scope: Scope, allowed: frozenset[str] | None, core: Any) -> None:
    """Admit the caller of a route that allows `allowed`, or raise 401/403; stores the Principal in the scope."""
    if allowed is None:
        raise Forbidden("This route declares no callers; denied by default")
    if PUBLIC in allowed:
        return
    auth = ""
    for name, value in scope["headers"]:
        if name == b"authorization":
            auth = value.decode("latin-1")
            break
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Send an access token: Authorization: Bearer <token>")
    if token.startswith(APP_SESSION_PREFIX):
        if APP_SESSION in allowed:
            return  # the route verifies it for the app in its path
        raise Unauthorized(
            "An app session is valid only on its own mini-app's gateway", code="auth.app_session_elsewhere"
        )
    claims = await core.tokens.verify(token.strip())
    if await core.sessions.is_ended(claims.session_id):
        raise Unauthorized("This session has ended; log in again", code="auth.session_ended")
    roles = claims.roles
    if claims.kind == "account":
        # What the server holds now, not what the token was issued with: a revoked role ends at once.
        roles = await core.roles.of(int(claims.subject), claims.session_id)
    principal = Principal(claims.subject, claims.kind, roles, claims.session_id)
    if principal.kind == "terminal":
        if TERMINAL not in allowed:
            raise Forbidden("Terminals may not call this route")
    elif not (ANY_ACCOUNT in allowed or principal.roles & allowed):
        raise Forbidden("Your roles do not allow this")
    # Litestar's own slot for the authenticated user: handlers read it as `request.user`.
    scope["user"] = principal


def access_control_middleware(app: ASGIApp) -> ASGIApp:
    """Runs `authorize` for the matched route before its handler.

    A middleware rather than a Litestar guard: Litestar copies the route handler object for every guard call,
    which cost more than the whole token check on the hottest routes.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = scope.get("route_handler")
            allowed = handler.opt.get("allow") if handler is not None else None
            await authorize(scope, allowed, scope["litestar_app"].state.core)
        await app(scope, receive, send)

    return middleware


def current_principal(request: Request[Any, Any, Any]) -> Principal:
    """Dependency: the caller access control admitted."""
    principal = request.scope.get("user")
    if not isinstance(principal, Principal):
        raise Unauthorized()
    return principal
