"""Rules of app id registrations: who may hold which ids, and who may publish under them.

The model is the one package registries with verified namespaces use (Maven Central, where a group id needs a
verified domain; app stores, where a bundle id is reserved by its team): an operator verifies an organisation's
domain and assigns it the namespace (`com.example` covers `com.example.*`; no two namespaces overlap); a member
requests an id inside it; an operator approves the request. Only a member of the organisation an approved
registration names may upload under that id, and the check runs before anything is stored. `gov` and `cn.gov`
belong to the county: no other organisation gets a namespace there, so `gov.guangdee.x` or `gov.guangde-medical`
lie outside every namespace a developer can hold. Every change is audited in its transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import asyncpg

from server import audit
from server.platform import errors as platform_errors
from server.platform.app_ids import errors as e
from server.platform.app_ids import repository

RESERVED_ROOTS = ("gov", "cn.gov")
"""Namespaces at or under these belong to the county's organisation alone (given to it by migration 0091)."""

DEV_ORG_NAME = "yima dev: local folders"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def reserved(namespace: str) -> bool:
    return any(namespace == root or namespace.startswith(root + ".") for root in RESERVED_ROOTS)


async def check_publisher(conn: asyncpg.Connection, account_id: int, app_id: str) -> None:
    """Refuse unless `app_id` has an approved registration whose organisation `account_id` belongs to."""
    row = await repository.registration(conn, app_id)
    if row is not None and row["status"] == "approved":
        if not await repository.is_member(conn, row["org_id"], account_id):
            raise platform_errors.NotOwner("This app id is registered to another organisation")
        return
    if await repository.covering_org(conn, app_id, account_id) is None:
        raise e.OutsideNamespace(extra={"app_id": app_id})
    status = "none" if row is None else row["status"]
    raise e.NotRegistered(extra={"app_id": app_id, "registration": status})


class AppIds:
    def __init__(self, clock: Callable[[], dt.datetime] = _now) -> None:
        self.clock = clock

    # ---- operators: organisations --------------------------------------------------------------------

    async def create_org(
        self, conn: asyncpg.Connection, operator: int, name: str, namespace: str, members: list[int]
    ) -> asyncpg.Record:
        if reserved(namespace):
            raise e.NamespaceReserved(extra={"namespace": namespace})
        at = self.clock()
        await repository.lock_namespaces(conn)
        held = await repository.overlapping_namespace(conn, namespace)
        if held is not None:
            raise e.NamespaceTaken(
                extra={"namespace": namespace, "held": held["namespace"], "org_id": held["org_id"]}
            )
        org_id = await repository.insert_org(conn, name, operator, at)
        await repository.insert_namespace(conn, namespace, org_id, operator, at)
        for account in sorted(set(members)):
            await repository.add_member(conn, org_id, account, at)
        await audit.append(
            conn,
            actor=f"account:{operator}",
            action="developer_org.created",
            target=f"developer_org:{org_id}",
            details={"namespace": namespace, "members": sorted(set(members))},
        )
        return await self.org(conn, org_id)

    async def add_member(
        self, conn: asyncpg.Connection, operator: int, org_id: int, account_id: int
    ) -> asyncpg.Record:
        await self.org(conn, org_id)
        if await repository.add_member(conn, org_id, account_id, self.clock()):
            await audit.append(
                conn,
                actor=f"account:{operator}",
                action="developer_org.member_added",
                target=f"developer_org:{org_id}",
                details={"account_id": account_id},
            )
        return await self.org(conn, org_id)

    async def org(self, conn: asyncpg.Connection, org_id: int) -> asyncpg.Record:
        row = await repository.org(conn, org_id)
        if row is None:
            raise e.OrgNotFound()
        return row

    # ---- developers: requests ------------------------------------------------------------------------

    async def request(
        self, conn: asyncpg.Connection, developer: int, app_id: str
    ) -> tuple[asyncpg.Record, bool]:
        """File a request for `app_id` in the developer's namespace; (the registration, whether it is new).

        Asking again for an id your organisation requested or holds answers its registration as it stands."""
        org_id = await repository.covering_org(conn, app_id, developer)
        if org_id is None:
            raise e.OutsideNamespace(extra={"app_id": app_id})
        filed = await repository.put_request(conn, app_id, org_id, developer, self.clock())
        row = await repository.registration(conn, app_id)
        assert row is not None  # filed now or held already
        if not filed:
            if row["org_id"] != org_id:  # only a registration from before namespaces can be here
                raise e.RegisteredElsewhere(extra={"app_id": app_id})
            return row, False
        await audit.append(
            conn,
            actor=f"account:{developer}",
            action="app_id.requested",
            target=f"app_id:{app_id}",
            details={"org_id": org_id},
        )
        return row, True

    # ---- operators: decisions ------------------------------------------------------------------------

    async def decide(
        self, conn: asyncpg.Connection, operator: int, app_id: str, approve: bool, reason: str
    ) -> asyncpg.Record:
        row = await repository.registration(conn, app_id, for_update=True)
        if row is None:
            raise e.RegistrationNotFound()
        if row["status"] != "pending":
            raise e.NotPending(extra={"status": row["status"]})
        status = "approved" if approve else "rejected"
        await repository.decide(conn, app_id, status, operator, reason, self.clock())
        await audit.append(
            conn,
            actor=f"account:{operator}",
            action=f"app_id.{status}",
            target=f"app_id:{app_id}",
            details={"org_id": row["org_id"], "reason": reason},
        )
        decided = await repository.registration(conn, app_id)
        assert decided is not None
        return decided

    async def registrations(
        self, conn: asyncpg.Connection, status: str | None, limit: int
    ) -> list[asyncpg.Record]:
        return await repository.registrations(conn, status, limit)

    # ---- yima dev --app ------------------------------------------------------------------------------

    async def register_for_dev(
        self, conn: asyncpg.Connection, account: int, app_id: str, reason: str
    ) -> None:
        """Development only: `account` (the demo operator) registers a local folder's id to itself at once.

        An id it holds stays as it is (a pending one is approved); one another organisation holds is refused."""
        row = await repository.registration(conn, app_id, for_update=True)
        at = self.clock()
        if row is not None:
            if not await repository.is_member(conn, row["org_id"], account):
                raise e.RegisteredElsewhere(extra={"app_id": app_id})
            if row["status"] != "approved":
                await repository.decide(conn, app_id, "approved", account, reason, at)
            else:
                return
        else:
            org_id = await repository.find_org(conn, DEV_ORG_NAME)
            if org_id is None:
                org_id = await repository.insert_org(conn, DEV_ORG_NAME, account, at)
            await repository.add_member(conn, org_id, account, at)
            await repository.insert_approved(conn, app_id, org_id, account, reason, at)
        await audit.append(
            conn,
            actor=f"account:{account}",
            action="app_id.registered_for_dev",
            target=f"app_id:{app_id}",
            details={"reason": reason},
        )
