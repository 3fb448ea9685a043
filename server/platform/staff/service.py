"""Staff rules: who may grant and revoke an app's staff roles, what a membership may name, and what a caller holds.

- An operator (or administrator) grants and revokes every declared role of a live app, at any unit or app-wide.
- An account holding the app's `admin` role grants and revokes the other roles: an app-wide admin at any unit or
  app-wide, an admin at a unit only at that unit. Only an operator makes admins.
- Nobody grants or revokes a membership of their own account (separation of duties, as for platform roles).
- A role must be declared under [staff.roles] by a live version of the app, a unit's kind under [staff.units].
Every grant and revoke is audited in the same transaction; a revoke takes effect with the caller's next request
(nothing is cached: the gateway and `user.staff` read the table on each call that needs it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import asyncpg
from yima_sdk._staff import StaffTable, unit_kind

from server import audit
from server.auth import Role
from server.platform import errors as pe
from server.platform.runtime.service import LiveVersion, Runtime
from server.platform.staff import errors as e
from server.platform.staff import repository

ADMIN = "admin"
MANAGERS = frozenset({Role.OPERATOR, Role.ADMINISTRATOR})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def roles_held(version: LiveVersion, rows: list[asyncpg.Record]) -> list[tuple[str, str | None]]:
    """(role, unit or None) of the memberships whose role this version still declares."""
    declared = version.staff.roles
    return [(r["role"], r["unit"] or None) for r in rows if r["role"] in declared]


class Staff:
    def __init__(self, runtime: Runtime, clock: Callable[[], dt.datetime] = _now) -> None:
        self.runtime = runtime
        self.clock = clock

    def declared(self, app_id: str) -> StaffTable:
        """Roles and unit kinds any live version of the app declares."""
        live = self.runtime.apps.get(app_id)
        if live is None:
            raise pe.AppNotFound()
        roles: dict[str, str] = {}
        units: dict[str, str] = {}
        for version in live.versions():
            roles |= version.staff.roles
            units |= version.staff.units
        return StaffTable(roles=roles, units=units)

    def _check(self, app_id: str, role: str, unit: str | None) -> None:
        declared = self.declared(app_id)
        if role not in declared.roles:
            raise e.UnknownRole(extra={"role": role, "declared": sorted(declared.roles)})
        if unit is not None and unit_kind(unit) not in declared.units:
            raise e.UnknownUnit(extra={"unit": unit, "declared": sorted(declared.units)})

    async def _admin_units(
        self, conn: asyncpg.Connection, app_id: str, actor: int, actor_roles: frozenset[str]
    ) -> set[str] | None:
        """What the actor manages: None for everything (operator, app-wide admin), else its admin units."""
        if actor_roles & MANAGERS:
            return None
        units = {r["unit"] for r in await repository.memberships(conn, app_id, actor) if r["role"] == ADMIN}
        if "" in units:
            return None
        if not units:
            raise e.NotAllowed()
        return units

    async def _may_manage(
        self,
        conn: asyncpg.Connection,
        app_id: str,
        actor: int,
        actor_roles: frozenset[str],
        account_id: int,
        role: str,
        unit: str | None,
    ) -> None:
        if actor == account_id:
            raise e.NotAllowed()
        manages = await self._admin_units(conn, app_id, actor, actor_roles)
        if actor_roles & MANAGERS:
            return
        if role == ADMIN or (manages is not None and (unit or "") not in manages):
            raise e.NotAllowed()

    async def grant(
        self,
        conn: asyncpg.Connection,
        *,
        actor: int,
        actor_roles: frozenset[str],
        app_id: str,
        account_id: int,
        role: str,
        unit: str | None,
    ) -> asyncpg.Record:
        self._check(app_id, role, unit)
        await self._may_manage(conn, app_id, actor, actor_roles, account_id, role, unit)
        try:
            async with (
                conn.transaction()
            ):  # a savepoint: an unknown account leaves the request's transaction usable
                row = await repository.grant(
                    conn, app_id, account_id, role, unit or "", f"account:{actor}", self.clock()
                )
        except asyncpg.ForeignKeyViolationError:
            raise e.UnknownAccount(extra={"account_id": account_id}) from None
        if row is None:
            raise e.AlreadyGranted()
        await audit.append(
            conn,
            actor=f"account:{actor}",
            action="staff.granted",
            target=f"miniapp:{app_id}",
            details={"account_id": account_id, "role": role, "unit": unit},
        )
        return row

    async def revoke(
        self,
        conn: asyncpg.Connection,
        *,
        actor: int,
        actor_roles: frozenset[str],
        app_id: str,
        account_id: int,
        role: str,
        unit: str | None,
    ) -> None:
        self.declared(
            app_id
        )  # 404 for an app that is not live; a role no longer declared may still be revoked
        await self._may_manage(conn, app_id, actor, actor_roles, account_id, role, unit)
        if not await repository.revoke(conn, app_id, account_id, role, unit or ""):
            raise e.NotGranted()
        await audit.append(
            conn,
            actor=f"account:{actor}",
            action="staff.revoked",
            target=f"miniapp:{app_id}",
            details={"account_id": account_id, "role": role, "unit": unit},
        )

    async def mine(self, conn: asyncpg.Connection, account_id: int) -> list[asyncpg.Record]:
        """Every membership the account holds, in every app."""
        return await repository.of_account(conn, account_id)

    async def listing(
        self, conn: asyncpg.Connection, *, actor: int, actor_roles: frozenset[str], app_id: str, limit: int
    ) -> list[asyncpg.Record]:
        """The app's memberships the actor manages (an admin at units sees those units' only)."""
        self.declared(app_id)
        manages = await self._admin_units(conn, app_id, actor, actor_roles)
        rows = await repository.listing(conn, app_id, limit)
        return [r for r in rows if manages is None or r["unit"] in manages]
