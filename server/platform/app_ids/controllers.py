"""HTTP routes of app id registrations: developers request ids (developer token, as `yima-sdk register` does);
operators create organisations with their namespaces, add members, and approve or reject requests."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post, put
from litestar.params import FromPath, JSONBody, QueryParameter

from server.auth import Role, allow
from server.auth.guards import PUBLIC
from server.deps import Caller, Db
from server.errors import Unprocessable, raises
from server.params import RowId
from server.platform import errors as platform_errors
from server.platform.app_ids import errors as e
from server.platform.app_ids import schemas
from server.platform.service import PlatformDep

UNKNOWN_ACCOUNT = (Unprocessable, "request.unknown_reference")  # a member id that is no account


def _registration(r: Any) -> schemas.Registration:
    return schemas.Registration(
        app_id=r["app_id"],
        org_id=r["org_id"],
        org_name=r["org_name"],
        status=r["status"],
        requested_at=r["requested_at"],
        requested_by=r["requested_by"],
        decided_at=r["decided_at"],
        reason=r["reason"],
    )


def _org(r: Any) -> schemas.Org:
    return schemas.Org(r["id"], r["name"], list(r["namespaces"]), list(r["members"]))


class AppIdRequestController(Controller):
    path = "/v1/developer/app-ids"
    tags = ["developer"]

    @post(
        "",
        status_code=201,
        opt=allow(PUBLIC)  # authenticated by the developer token below, not by an account JWT
        | raises(platform_errors.DeveloperTokenInvalid, e.OutsideNamespace, e.RegisteredElsewhere),
        operation_id="requestAppId",
    )
    async def request_id(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[schemas.RegistrationRequest],
        platform: PlatformDep,
        db: Db,
    ) -> Response[schemas.Registration]:
        """Request an app id in your organisation's namespace (`Authorization: Bearer ydt_...`): it is yours to
        publish under once an operator approves. Asking again answers 200 with the registration as it stands."""
        developer = await platform.registry.developer(db, request.headers.get("authorization", ""))
        row, created = await platform.app_ids.request(db, developer, data.app_id)
        return Response(_registration(row), status_code=201 if created else 200)


class AppIdAdminController(Controller):
    path = "/v1/admin"
    tags = ["admin"]

    @post(
        "/developer-orgs",
        status_code=201,
        opt=allow(Role.OPERATOR) | raises(e.NamespaceReserved, e.NamespaceTaken, UNKNOWN_ACCOUNT),
        operation_id="createDeveloperOrg",
    )
    async def create_org(
        self, data: JSONBody[schemas.OrgRequest], principal: Caller, platform: PlatformDep, db: Db
    ) -> schemas.Org:
        """A developer organisation holding `namespace` (verify first that it controls the domain), with its
        developers' account ids (audited). Namespaces never overlap; `gov.*` and `cn.gov.*` are the county's."""
        row = await platform.app_ids.create_org(
            db, principal.account_id, data.name, data.namespace, data.members
        )
        return _org(row)

    @put(
        "/developer-orgs/{org_id:int}/members/{account_id:int}",
        opt=allow(Role.OPERATOR) | raises(e.OrgNotFound, UNKNOWN_ACCOUNT),
        operation_id="addDeveloperOrgMember",
    )
    async def add_member(
        self, org_id: RowId, account_id: RowId, principal: Caller, platform: PlatformDep, db: Db
    ) -> schemas.Org:
        """Add a developer to an organisation: it may request and publish the organisation's ids (audited)."""
        return _org(await platform.app_ids.add_member(db, principal.account_id, org_id, account_id))

    @get("/app-ids", opt=allow(Role.OPERATOR), operation_id="listAppIdRegistrations")
    async def registrations(
        self,
        platform: PlatformDep,
        db: Db,
        status: Annotated[schemas.Status | None, QueryParameter()] = "pending",
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> list[schemas.Registration]:
        """App id registrations, oldest request first: by default those waiting for a decision."""
        return [_registration(r) for r in await platform.app_ids.registrations(db, status, limit)]

    @post(
        "/app-ids/{app_id:str}/decision",
        status_code=200,
        opt=allow(Role.OPERATOR) | raises(e.RegistrationNotFound, e.NotPending),
        operation_id="decideAppIdRegistration",
    )
    async def decide(
        self,
        app_id: FromPath[str],
        data: JSONBody[schemas.RegistrationDecision],
        principal: Caller,
        platform: PlatformDep,
        db: Db,
    ) -> schemas.Registration:
        """Approve or reject a pending request, with a reason the developer sees (audited)."""
        row = await platform.app_ids.decide(
            db, principal.account_id, app_id, data.decision == "approve", data.reason
        )
        return _registration(row)
