"""HTTP routes: an app's staff memberships, granted and revoked by operators and the app's admins (audited)."""

from __future__ import annotations

from typing import Annotated, Any, TypeAlias

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from yima_sdk._staff import UNIT_PATTERN

from server.auth import allow
from server.auth.guards import ANY_ACCOUNT
from server.deps import Caller, Db
from server.errors import raises
from server.params import RowId
from server.platform import errors as pe
from server.platform.service import Platform
from server.platform.staff import errors as e
from server.platform.staff import schemas

PlatformDep: TypeAlias = NamedDependency[Platform]


def _grant(app_id: str, r: Any) -> schemas.StaffGrant:
    return schemas.StaffGrant(
        app_id, r["account_id"], r["role"], r["granted_at"], r["granted_by"], r["unit"] or None
    )


class MyStaffController(Controller):
    path = "/v1/me/staff"
    tags = ["staff"]

    @get("/", opt=allow(ANY_ACCOUNT), operation_id="listMyStaffRoles")
    async def mine(self, principal: Caller, platform: PlatformDep, db: Db) -> list[schemas.MyStaffRole]:
        """The staff roles the caller holds in every app (an app's `admin` manages that app's staff)."""
        rows = await platform.staff.mine(db, principal.account_id)
        return [schemas.MyStaffRole(r["app_id"], r["role"], r["granted_at"], r["unit"] or None) for r in rows]


class StaffController(Controller):
    path = "/v1/miniapps/{app_id:str}/staff"
    tags = ["staff"]

    @get(
        "/",
        opt=allow(ANY_ACCOUNT) | raises(pe.AppNotFound, e.NotAllowed),
        operation_id="listMiniappStaff",
    )
    async def listing(
        self,
        app_id: FromPath[str],
        principal: Caller,
        platform: PlatformDep,
        db: Db,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 200,
    ) -> list[schemas.StaffGrant]:
        """The app's staff memberships (operators; an app admin sees those at the units it manages)."""
        rows = await platform.staff.listing(
            db, actor=principal.account_id, actor_roles=principal.roles, app_id=app_id, limit=limit
        )
        return [_grant(app_id, r) for r in rows]

    @post(
        "/",
        status_code=201,
        opt=allow(ANY_ACCOUNT)
        | raises(
            pe.AppNotFound, e.UnknownRole, e.UnknownUnit, e.UnknownAccount, e.NotAllowed, e.AlreadyGranted
        ),
        operation_id="grantMiniappStaff",
    )
    async def grant(
        self,
        app_id: FromPath[str],
        data: JSONBody[schemas.StaffGrantRequest],
        principal: Caller,
        platform: PlatformDep,
        db: Db,
    ) -> schemas.StaffGrant:
        """Grant an account one of the app's staff roles, at a unit or app-wide (audited). Operators grant every
        role; the app's `admin` grants the others, at its units; nobody grants their own account."""
        row = await platform.staff.grant(
            db,
            actor=principal.account_id,
            actor_roles=principal.roles,
            app_id=app_id,
            account_id=data.account_id,
            role=data.role,
            unit=data.unit,
        )
        return _grant(app_id, row)

    @delete(
        "/{account_id:int}/{role:str}",
        status_code=204,
        opt=allow(ANY_ACCOUNT) | raises(pe.AppNotFound, e.NotAllowed, e.NotGranted),
        operation_id="revokeMiniappStaff",
    )
    async def revoke(
        self,
        app_id: FromPath[str],
        account_id: RowId,
        role: FromPath[str],
        principal: Caller,
        platform: PlatformDep,
        db: Db,
        unit: Annotated[str | None, QueryParameter(pattern=UNIT_PATTERN, max_length=100)] = None,
    ) -> None:
        """Take a membership back (audited): the account's next call no longer holds it."""
        await platform.staff.revoke(
            db,
            actor=principal.account_id,
            actor_roles=principal.roles,
            app_id=app_id,
            account_id=account_id,
            role=role,
            unit=unit,
        )
