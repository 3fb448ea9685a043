"""HTTP routes: the developer API (tokens, uploads), the operator's review and release API, the resident's
catalog, consent, inbox and payments, and the gateway into each mini-app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeAlias

from litestar import Controller, Request, Response, delete, get, post, put, route
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Operation, Schema
from litestar.params import FromPath, JSONBody, QueryParameter

from server.auth import Role, allow
from server.auth.guards import ANY_ACCOUNT, APP_SESSION, PUBLIC, Principal
from server.deps import Caller, Db
from server.errors import AppError, Conflict, PayloadTooLarge, Unauthorized, raises
from server.params import INT64_MAX, RowId
from server.platform import archive, repository, schemas
from server.platform import errors as e
from server.platform.app_ids.errors import NotRegistered, OutsideNamespace
from server.platform.app_ids.service import check_publisher
from server.platform.app_sessions import AppSessionExpired, AppSessionInvalid
from server.platform.gateway import Answer
from server.platform.service import Platform

PlatformDep: TypeAlias = NamedDependency[Platform]


def _checks(raw: list[dict[str, Any]]) -> list[schemas.Check]:
    return [schemas.Check(c["name"], c["ok"], c.get("detail", "")) for c in raw]


def _version_state(r: Any) -> schemas.VersionState:
    return schemas.VersionState(
        version=r["version"],
        digest=r["digest"],
        status=r["status"],
        checks=_checks(r["checks"]),
        uploaded_at=r["uploaded_at"],
        review_reason=r["review_reason"],
        reviewed_at=r["reviewed_at"],
        released_at=r["released_at"],
    )


def _app_state(app: Any, versions: list[Any]) -> schemas.AppState:
    return schemas.AppState(
        app_id=app["app_id"],
        name=app["name"],
        status=app["status"],
        versions=[_version_state(v) for v in versions],
        quotas=schemas.Quotas(
            app["calls_per_minute"],
            app["resident_calls_per_minute"],
            app["storage_max_keys"],
            app["storage_max_bytes"],
            app["storage_keys"] + app.get("db_keys", 0),
            app["storage_bytes"] + app.get("db_bytes", 0),
        ),
        stable_version=app["stable_version"],
        phased_version=app["phased_version"],
        phased_percent=app["phased_percent"],
        whitelist=list(app["phased_whitelist"]),
        suspended_reason=app["suspended_reason"],
    )


async def _current(platform: Platform, app_id: str) -> schemas.AppState:
    async with platform.core.db.connection() as conn:
        app, versions = await platform.registry.state(conn, app_id)
    return _app_state(app, versions)


def _payment(r: Any) -> schemas.Payment:
    return schemas.Payment(
        id=r["id"],
        app_id=r["app_id"],
        amount_fen=r["amount_fen"],
        reason=r["reason"],
        status=r["status"],
        created_at=r["created_at"],
        failure=r["failure"],
        decided_at=r["decided_at"],
    )


class DeveloperController(Controller):
    path = "/v1/developer"
    tags = ["developer"]

    @post("/tokens", status_code=201, opt=allow(Role.DEVELOPER), operation_id="createDeveloperToken")
    async def create_token(self, principal: Caller, platform: PlatformDep, db: Db) -> schemas.DeveloperToken:
        """A developer API token for `yima-sdk publish` (shown once; stored hashed)."""
        token_id, token, at = await platform.registry.issue_token(db, principal.account_id)
        return schemas.DeveloperToken(token, token_id, at)

    @delete(
        "/tokens/{token_id:int}",
        status_code=204,
        opt=allow(Role.DEVELOPER) | raises(e.TokenNotFound),
        operation_id="revokeDeveloperToken",
    )
    async def revoke_token(self, token_id: RowId, principal: Caller, platform: PlatformDep, db: Db) -> None:
        """Revoke one of your developer tokens; it stops working at once."""
        await platform.registry.revoke_token(db, principal.account_id, token_id)

    @post(
        "/apps/{app_id:str}/versions",
        status_code=201,
        opt=allow(PUBLIC)
        | raises(
            e.DeveloperTokenInvalid,
            NotRegistered,
            OutsideNamespace,
            e.NotOwner,
            e.ArchiveTooLarge,
            PayloadTooLarge,
            e.VersionExists,
        ),  # authenticated by the developer token below, not by an account JWT
        operation_id="uploadMiniappVersion",
        request_max_body_size=archive.MAX_PACKED + 1,
    )
    async def upload(
        self, request: Request[Any, Any, Any], app_id: FromPath[str], platform: PlatformDep, db: Db
    ) -> Response[schemas.UploadResult]:
        """Upload a packed version (application/zip, `Authorization: Bearer ydt_...`) under an app id registered to
        your organisation (`POST /v1/developer/app-ids`, approved by an operator; else 403 `app_id.not_registered`
        or `app_id.outside_namespace`, and nothing is stored): checks run at once and the report comes back;
        passing versions enter the review queue. The same bytes again answer 200."""
        developer = await platform.registry.developer(db, request.headers.get("authorization", ""))
        data = await request.body()
        up = await platform.registry.upload(db, developer, app_id, data)
        result = schemas.UploadResult(up.app_id, up.version, up.digest, up.status, _checks(up.checks))  # type: ignore[arg-type]
        return Response(result, status_code=201 if up.created or not up.version else 200)

    @get(
        "/apps/{app_id:str}",
        opt=allow(PUBLIC)
        | raises(e.DeveloperTokenInvalid, e.AppNotFound, NotRegistered, OutsideNamespace, e.NotOwner),
        operation_id="getDeveloperApp",
    )
    async def app_state(
        self, request: Request[Any, Any, Any], app_id: FromPath[str], platform: PlatformDep, db: Db
    ) -> schemas.AppState:
        """Your app's versions with their check reports, review reasons and the release state (developer token)."""
        developer = await platform.registry.developer(db, request.headers.get("authorization", ""))
        app, versions = await platform.registry.state(db, app_id)
        await check_publisher(db, developer, app_id)
        return _app_state(app, versions)


class MiniAppAdminController(Controller):
    path = "/v1/admin/miniapps"
    tags = ["admin"]

    @get("", opt=allow(Role.OPERATOR), operation_id="listMiniapps")
    async def list_apps(
        self, db: Db, limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 500
    ) -> list[schemas.AppSummary]:
        """Every registered app (by id) with its release state, for the console."""
        return [
            schemas.AppSummary(
                r["app_id"],
                r["name"],
                r["status"],
                r["stable_version"],
                r["phased_version"],
                r["phased_percent"],
                r["suspended_reason"],
            )
            for r in await repository.list_apps(db, limit)
        ]

    @get("/reviews", opt=allow(Role.OPERATOR), operation_id="miniappReviewQueue")
    async def queue(
        self, db: Db, limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50
    ) -> list[schemas.ReviewItem]:
        """Versions waiting for review, oldest first, with their check reports and manifests, and the manifest of the
        version residents run now (`previous_manifest`) to compare capabilities and scopes with."""
        rows = await repository.review_queue(db, limit)
        return [
            schemas.ReviewItem(
                r["app_id"],
                r["version"],
                r["digest"],
                r["size_bytes"],
                r["uploaded_at"],
                r["developer_id"],
                _checks(r["checks"]),
                r["manifest"],
                r["previous_version"],
                r["previous_manifest"],
            )
            for r in rows
        ]

    @post(
        "/{app_id:str}/versions/{version:str}/review",
        status_code=200,
        opt=allow(Role.OPERATOR) | raises(e.VersionNotFound, e.NotInReview),
        operation_id="reviewMiniappVersion",
    )
    async def review(
        self,
        app_id: FromPath[str],
        version: FromPath[str],
        data: JSONBody[schemas.ReviewDecision],
        principal: Caller,
        platform: PlatformDep,
        db: Db,
    ) -> schemas.ReviewResult:
        """Approve or reject a version in review, with a reason the developer sees (audited)."""
        status = await platform.registry.review(
            db, principal.account_id, app_id, version, data.decision == "approve", data.reason
        )
        return schemas.ReviewResult(app_id, version, status)

    @get("/{app_id:str}", opt=allow(Role.OPERATOR) | raises(e.AppNotFound), operation_id="adminGetMiniapp")
    async def state(self, app_id: FromPath[str], platform: PlatformDep, db: Db) -> schemas.AppState:
        """An app's versions, release state, quotas and usage."""
        app, versions = await platform.registry.state(db, app_id)
        return _app_state(app, versions)

    @post(
        "/{app_id:str}/release",
        status_code=200,
        opt=allow(Role.OPERATOR)
        | raises(e.AppNotFound, e.VersionNotFound, e.NotApproved, (Conflict, "release.already_released")),
        operation_id="releaseMiniapp",
    )
    async def release(
        self,
        app_id: FromPath[str],
        data: JSONBody[schemas.ReleaseRequest],
        principal: Caller,
        platform: PlatformDep,
    ) -> schemas.AppState:
        """Start a phased release of an approved version: the whitelist first, then a percentage (100 = everyone)."""
        op = platform.registry.release
        await platform.transition(
            lambda c: op(c, principal.account_id, app_id, data.version, data.whitelist, data.percent)
        )
        return await _current(platform, app_id)

    @post(
        "/{app_id:str}/release/phase",
        status_code=200,
        opt=allow(Role.OPERATOR) | raises(e.AppNotFound, e.NothingPhased, e.PercentageDecrease),
        operation_id="widenMiniappRelease",
    )
    async def widen(
        self,
        app_id: FromPath[str],
        data: JSONBody[schemas.PhaseRequest],
        principal: Caller,
        platform: PlatformDep,
    ) -> schemas.AppState:
        """Widen the phased group: a higher percentage (never lower: 409 release.percentage_decrease), more
        whitelisted accounts. 100 completes the release."""
        op = platform.registry.widen
        await platform.transition(lambda c: op(c, principal.account_id, app_id, data.percent, data.whitelist))
        return await _current(platform, app_id)

    @post(
        "/{app_id:str}/release/revert",
        status_code=200,
        opt=allow(Role.OPERATOR) | raises(e.AppNotFound, e.NothingPhased),
        operation_id="revertMiniappRelease",
    )
    async def revert(
        self, app_id: FromPath[str], principal: Caller, platform: PlatformDep
    ) -> schemas.AppState:
        """Send the whole phased group back to the previous version at once."""
        op = platform.registry.revert_phased
        await platform.transition(lambda c: op(c, principal.account_id, app_id))
        return await _current(platform, app_id)

    @post(
        "/{app_id:str}/rollback",
        status_code=200,
        opt=allow(Role.OPERATOR) | raises(e.AppNotFound, e.NotRecent),
        operation_id="rollbackMiniapp",
    )
    async def rollback(
        self,
        app_id: FromPath[str],
        data: JSONBody[schemas.RollbackRequest],
        principal: Caller,
        platform: PlatformDep,
    ) -> schemas.AppState:
        """Release one of the recent versions to everyone again."""
        op = platform.registry.rollback
        await platform.transition(lambda c: op(c, principal.account_id, app_id, data.version))
        return await _current(platform, app_id)

    @post(
        "/{app_id:str}/suspend",
        status_code=200,
        opt=allow(Role.OPERATOR) | raises(e.AppNotFound),
        operation_id="suspendMiniapp",
    )
    async def suspend(
        self,
        app_id: FromPath[str],
        data: JSONBody[schemas.SuspendRequest],
        principal: Caller,
        platform: PlatformDep,
    ) -> schemas.AppState:
        """Kill switch: every call is refused at once (miniapp.suspended) and the app's workers stop."""
        op = platform.registry.suspend
        await platform.transition(lambda c: op(c, principal.account_id, app_id, data.reason))
        return await _current(platform, app_id)

    @post(
        "/{app_id:str}/resume",
        status_code=200,
        opt=allow(Role.OPERATOR) | raises(e.AppNotFound),
        operation_id="resumeMiniapp",
    )
    async def resume(
        self, app_id: FromPath[str], principal: Caller, platform: PlatformDep
    ) -> schemas.AppState:
        """Lift a suspension."""
        op = platform.registry.resume
        await platform.transition(lambda c: op(c, principal.account_id, app_id))
        return await _current(platform, app_id)

    @put(
        "/{app_id:str}/quotas",
        opt=allow(Role.OPERATOR) | raises(e.AppNotFound),
        operation_id="setMiniappQuotas",
    )
    async def quotas(
        self,
        app_id: FromPath[str],
        data: JSONBody[schemas.QuotaRequest],
        principal: Caller,
        platform: PlatformDep,
    ) -> schemas.AppState:
        """Change an app's call rates and storage quotas."""
        wanted = {
            k: v
            for k, v in {
                "calls_per_minute": data.calls_per_minute,
                "resident_calls_per_minute": data.resident_calls_per_minute,
                "storage_max_keys": data.storage_max_keys,
                "storage_max_bytes": data.storage_max_bytes,
            }.items()
            if v is not None
        }
        op = platform.registry.set_quotas
        await platform.transition(lambda c: op(c, principal.account_id, app_id, wanted))
        return await _current(platform, app_id)

    @put(
        "/scenes/{kind:str}/{scene:str}",
        opt=allow(Role.OPERATOR) | raises(e.AppNotFound, e.SceneKindNotSubscribed),
        operation_id="bindMiniappScene",
    )
    async def bind_scene(
        self,
        kind: FromPath[str],
        scene: FromPath[str],
        data: JSONBody[schemas.SceneBinding],
        principal: Caller,
        platform: PlatformDep,
    ) -> schemas.SceneBound:
        """Bind a terminal scene to a released app: its accepted scans reach the app's `on_scan(kind)` handler."""
        live = platform.runtime.apps.get(data.app_id)
        scenes = frozenset(s for v in (live.versions() if live else []) for s in v.scenes)
        op = platform.registry.bind_scene
        await platform.transition(lambda c: op(c, principal.account_id, kind, scene, data.app_id, scenes))
        return schemas.SceneBound(kind, scene, data.app_id)


class ResidentPlatformController(Controller):
    path = "/v1"
    tags = ["miniapps"]

    @get("/miniapps", opt=allow(ANY_ACCOUNT), operation_id="miniappCatalog")
    async def catalog(self, principal: Caller, platform: PlatformDep, db: Db) -> list[schemas.CatalogEntry]:
        """Released mini-apps available to you (the version your phased-release group gets), with the data
        scopes each asks for (and `pass_share:<app>`: other apps that may honour its passes), why, and what
        you decided."""
        decided = {
            (r["app_id"], r["scope"]): r["granted"]
            for r in await repository.consents(db, principal.account_id)
        }
        entries = []
        for live in sorted(platform.runtime.apps.values(), key=lambda a: a.name):
            version = None if live.suspended else live.version_for(principal.account_id)
            if version is None:
                continue
            scopes = [
                schemas.Scope(name, purpose, _state(decided.get((live.app_id, name))))
                for name, purpose in sorted(version.consent_scopes.items())
            ]
            page = await platform.ui.page(version)
            entries.append(schemas.CatalogEntry(live.app_id, live.name, version.version, scopes, page))
        return entries

    @post(
        "/me/miniapps/{app_id:str}/session",
        status_code=201,
        opt=allow(ANY_ACCOUNT) | raises(e.AppNotFound, e.AppSuspended, e.AppUnavailable),
        operation_id="openMiniappSession",
    )
    async def app_session(
        self, app_id: FromPath[str], principal: Caller, platform: PlatformDep
    ) -> schemas.AppSession:
        """An app-scoped session for the app's page (what the shell hands its iframe; your own token stays with
        the shell): a short-lived `yas_` token valid on this app's gateway only, and your id in this app."""
        platform.runtime.resolve(app_id, principal.account_id)  # released to you and not suspended
        issued = await platform.app_sessions.issue(principal.account_id, principal.session_id, app_id)
        return schemas.AppSession(app_id, issued.token, issued.expires_in, issued.user_id)

    @get("/me/consents", opt=allow(ANY_ACCOUNT), operation_id="listConsents")
    async def consents(self, principal: Caller, db: Db) -> list[schemas.Consent]:
        """Every scope decision you made, per app."""
        rows = await repository.consents(db, principal.account_id)
        return [schemas.Consent(r["app_id"], r["scope"], r["granted"], r["decided_at"]) for r in rows]

    @put(
        "/me/consents/{app_id:str}/{scope_name:str}",
        opt=allow(ANY_ACCOUNT) | raises(e.AppNotFound, e.UnknownScope),
        operation_id="decideConsent",
    )
    async def decide(
        self,
        app_id: FromPath[str],
        scope_name: FromPath[str],
        data: JSONBody[schemas.ConsentDecision],
        principal: Caller,
        platform: PlatformDep,
        db: Db,
    ) -> schemas.Consent:
        """Grant or refuse one scope to one app (audited)."""
        await platform.residents.decide(db, principal.account_id, app_id, scope_name, data.granted)
        rows = await repository.consents(db, principal.account_id, app_id)
        r = next(r for r in rows if r["scope"] == scope_name)
        return schemas.Consent(r["app_id"], r["scope"], r["granted"], r["decided_at"])

    @delete(
        "/me/consents/{app_id:str}/{scope_name:str}",
        status_code=204,
        opt=allow(ANY_ACCOUNT) | raises(e.AppNotFound, e.UnknownScope),
        operation_id="revokeConsent",
    )
    async def revoke(
        self,
        app_id: FromPath[str],
        scope_name: FromPath[str],
        principal: Caller,
        platform: PlatformDep,
        db: Db,
    ) -> None:
        """Withdraw a scope; the app is denied from its next request on."""
        await platform.residents.revoke(db, principal.account_id, app_id, scope_name)

    @get("/me/inbox", opt=allow(ANY_ACCOUNT), operation_id="myInbox")
    async def inbox(
        self,
        principal: Caller,
        platform: PlatformDep,
        db: Db,
        before: Annotated[int | None, QueryParameter(ge=1, le=INT64_MAX)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 30,
    ) -> list[schemas.InboxMessage]:
        """Messages mini-apps sent you, newest first (`before` = the last id you have, for the next page)."""
        rows = await platform.residents.inbox(db, principal.account_id, before, limit)
        return [
            schemas.InboxMessage(r["id"], r["app_id"], r["app_name"], r["title"], r["body"], r["created_at"])
            for r in rows
        ]

    @get("/me/payments", opt=allow(ANY_ACCOUNT), operation_id="myMiniappPayments")
    async def payments(self, principal: Caller, db: Db) -> list[schemas.Payment]:
        """Mini-app payments: pending ones wait for your confirmation."""
        return [_payment(r) for r in await repository.payments_of(db, principal.account_id, 50)]

    @post(
        "/me/payments/{payment_id:int}/confirm",
        status_code=200,
        opt=allow(ANY_ACCOUNT) | raises(e.PaymentNotFound, e.PaymentDecided),
        operation_id="confirmPayment",
    )
    async def confirm(
        self, payment_id: RowId, principal: Caller, platform: PlatformDep, db: Db
    ) -> schemas.Payment:
        """Confirm a pending payment: the one-card is charged once (status succeeded, or failed with a code)."""
        return _payment(await platform.residents.confirm(db, principal.account_id, payment_id))

    @post(
        "/me/payments/{payment_id:int}/decline",
        status_code=200,
        opt=allow(ANY_ACCOUNT) | raises(e.PaymentNotFound, e.PaymentDecided),
        operation_id="declinePayment",
    )
    async def decline(
        self, payment_id: RowId, principal: Caller, platform: PlatformDep, db: Db
    ) -> schemas.Payment:
        """Decline a pending payment; nothing is charged."""
        return _payment(await platform.residents.decline(db, principal.account_id, payment_id))


def _state(granted: bool | None) -> Literal["granted", "refused", "not_asked"]:
    return "not_asked" if granted is None else ("granted" if granted else "refused")


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
    ) -> Response[bytes]:
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
        return Response(answer.body, status_code=answer.status, headers=answer.headers, media_type=media)

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
            {k.lower(): v for k, v in request.headers.items()},
            body,
        )
        return answer


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
