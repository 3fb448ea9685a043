"""HTTP routes of the app registry: the developer API (tokens, uploads) and the operator's review and release API."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.params import FromPath, JSONBody, QueryParameter

from server.auth import Role, allow
from server.auth.guards import PUBLIC
from server.deps import Caller, Db
from server.errors import Conflict, PayloadTooLarge, raises
from server.params import RowId
from server.platform import errors as e
from server.platform import schemas
from server.platform.app_ids.errors import NotRegistered, OutsideNamespace
from server.platform.app_ids.service import check_publisher
from server.platform.apps import archive, repository
from server.platform.service import Platform, PlatformDep


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
