"""The server's CapabilityProvider: what a sandboxed mini-app reaches through `ctx.<capability>.<op>(...)`.

Every request is decoded into one operation Struct of the SDK's capability contract (yima_sdk.contract: the
arguments with their constraints, the reply type, the documented errors), as the simulator decodes it:
keyword arguments only, unknown operations refused with `capability.denied`, bad arguments with
`capability.invalid_argument`. What is left here is the platform's own rules:

    user.id -> app-scoped id | None              user.scope -> str   (declared, consented, else ConsentDenied;
                                                 `registered_in:<county>` answers only "true" or "false")
    user.staff -> StaffRoles                     the caller's memberships whose role the version declares
    storage.*                                    see storage/
    db.*                                         see db/ (collections, queries, commits)
    notify.send -> message id                    lands in GET /v1/me/inbox; 20 per resident per app per day
    credentials.verify -> Verification           credentials.issue_pass -> AppPass   credentials.revoke_pass
                                                 (app passes: see passes.py)
    payments.charge -> Payment (pending_confirmation until the resident confirms)    payments.status -> Payment
    payments.refund -> Refund (part or all of a succeeded payment, once per key)
    payments.cancel -> Payment (a pending one ends cancelled; a decided one answers as it stands)
    jobs.schedule -> job id    jobs.cancel -> bool   see jobs/
    terminals.publish -> DocumentVersion   terminals.published -> [DocumentVersion]   see terminal_documents/
    terminals.hold -> HeldEntry   terminals.drop -> bool   see terminal_lists/

`log` is served by the sandbox host itself; capabilities missing from the manifest never reach this class.
App passes (issue, revoke, verify, and whether an app honours another's) are passes.py's.

Over 400 lines because it is the one provider every operation of every capability passes through: the dispatch
above and the platform's own rules for user, notify, credentials and payments, the rest delegated to a service each.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from yima_sdk import contract as c
from yima_sdk.codes import CredentialError
from yima_sdk.errors import CapabilityDenied, ConsentDenied, InvalidArgument, QuotaExceeded
from yima_sdk.manifest import RESIDENCE_SCOPE
from yima_sdk.passes import PASS_PREFIX, PassClaims

from sandbox.capabilities import CallInfo
from server import audit
from server.core import Core
from server.errors import AppError
from server.idempotency import IdempotencyKeyReused
from server.platform.db.service import AppDb
from server.platform.jobs.service import AppJobs
from server.platform.ports import CHARGE_NOT_FOUND, REFUND_EXCEEDS_CHARGE, Accounts, HealthCodes, Payments
from server.platform.residents import repository
from server.platform.residents.consents import LiveConsents
from server.platform.runtime.group_write import GroupWrite
from server.platform.runtime.ids import AppUserIds
from server.platform.runtime.passes import AppPasses
from server.platform.runtime.service import Runtime
from server.platform.staff import repository as staff_repository
from server.platform.staff.service import roles_held
from server.platform.storage.service import AppStorage
from server.platform.terminal_documents.service import TerminalDocuments
from server.platform.terminal_lists.service import TerminalLists

NOTIFY_PER_DAY = 20


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


class PlatformCapabilities:
    def __init__(
        self,
        core: Core,
        runtime: Runtime,
        storage: AppStorage,
        *,
        user_id_key: bytes,
        accounts: Accounts,
        codes: HealthCodes,
        payments: Payments,
    ) -> None:
        self.core = core
        self.runtime = runtime
        self.storage = storage
        self.accounts = accounts
        self.codes = codes
        self.payments = payments
        self.db = AppDb(core.db, runtime)
        self.jobs = AppJobs(core.db)
        self.documents = TerminalDocuments(core)
        self.lists = TerminalLists(core, codes, self.account)
        self.ids = AppUserIds(user_id_key)
        self.consents = LiveConsents(core.cache, core.db)
        """Residents' consents, cached per worker; Platform.start starts it, a decision announces itself."""
        self._accounts: dict[tuple[str, str], int] = {}
        self._first_uses = GroupWrite(core.db, repository.remember_users)
        self.clock: Callable[[], float] = time.time
        self.passes = AppPasses(core, runtime, codes=codes, known=self.known, clock=lambda: self.clock())

    # ---- who is the resident behind an app-scoped id --------------------------------------------------

    def remember(self, app_id: str, user_id: str, account_id: int) -> bool:
        """Cache the mapping; True when this process had not seen it (the caller then stores it)."""
        if (app_id, user_id) in self._accounts:
            return False
        if len(self._accounts) > 500_000:
            self._accounts.clear()
        self._accounts[(app_id, user_id)] = account_id
        return True

    async def seen(self, app_id: str, account_id: int) -> str:
        """The resident's id in this app, stored (once per process) so capabilities can find the resident behind
        it later; returns once it is stored. First uses arriving together share one statement: a burst of
        residents opening an app waits on a few inserts, not one each (docs/benchmarks.md, medical booking)."""
        user_id = self.ids.for_app(app_id, account_id)
        if (app_id, user_id) not in self._accounts:
            await self._first_uses.add((app_id, user_id, account_id, _utc(self.clock())))
            self.remember(app_id, user_id, account_id)
        return user_id

    async def known(self, app_id: str, account_id: int) -> str | None:
        """The resident's id in this app if they have used it (a gateway call of theirs stored it), else None.

        A code shown to a terminal or to an app's verify is not consent: it must not make the app able to name,
        message or charge the holder. Only the resident's own use of the app links them to it."""
        user_id = self.ids.for_app(app_id, account_id)
        if (app_id, user_id) in self._accounts:
            return user_id
        async with self.core.db.connection() as conn:
            if await repository.account_of(conn, app_id, user_id) is None:
                return None
        self.remember(app_id, user_id, account_id)
        return user_id

    async def known_consenting(self, app_id: str, account_id: int, scope: str) -> tuple[str | None, bool]:
        """`known()` and whether the resident granted `scope` in the app (a withdrawn consent holds at the next
        scan: see LiveConsents)."""
        user_id = await self.known(app_id, account_id)
        if user_id is None:
            return None, False
        return user_id, await self.consents.granted(account_id, app_id, scope)

    async def account(self, app_id: str, user_id: str | None, what: str) -> int:
        if user_id is None:
            raise ConsentDenied(f"an anonymous caller cannot {what}")
        found = self._accounts.get((app_id, user_id))
        if found is None:
            async with self.core.db.connection() as conn:
                found = await repository.account_of(conn, app_id, user_id)
            if found is None:
                raise InvalidArgument(f"no resident with app-scoped id {user_id!r} in this app")
            self._accounts[(app_id, user_id)] = found
        return found

    # ---- dispatch -------------------------------------------------------------------------------------

    async def handle(
        self, call: CallInfo, capability: str, operation: str, args: list[Any], kwargs: dict[str, Any]
    ) -> Any:
        op = c.decode_operation(capability, operation, args, kwargs)
        match op:
            case c.UserId():
                return call.user_id
            case c.UserScope():
                return await self._scope(call, op.name)
            case c.UserStaff():
                return await self._staff(call)
            case c.NotifySend():
                return await self._notify(call, op)
            case c.CredentialsVerify():
                return await self._verify(call, op.payload)
            case c.CredentialsIssuePass():
                return await self.passes.issue(call, op)
            case c.CredentialsRevokePass():
                return await self.passes.revoke(call, op.pass_id)
            case c.PaymentsCharge():
                return await self._charge(call, op)
            case c.PaymentsStatus():
                return await self._payment_status(call, op.payment_id)
            case c.PaymentsRefund():
                return await self._refund(call, op)
            case c.PaymentsCancel():
                return await self._cancel_payment(call, op.payment_id)
            case (
                c.DbGet()
                | c.DbInsert()
                | c.DbUpdate()
                | c.DbDelete()
                | c.DbFind()
                | c.DbCount()
                | c.DbAggregate()
                | c.DbCommit()
            ):
                return await self.db.handle(call, op)
            case c.JobsSchedule() | c.JobsCancel():
                return await self.jobs.handle(call.app_id, op)
            case c.TerminalsPublish() | c.TerminalsPublished():
                return await self.documents.handle(call.app_id, op)
            case c.TerminalsHold() | c.TerminalsDrop():
                return await self.lists.handle(call.app_id, op)
            case _:
                return await self.storage.handle(call.app_id, op)

    # ---- user -----------------------------------------------------------------------------------------

    async def _scope(self, call: CallInfo, name: str) -> str:
        version = self.runtime.live_version(call.app_id, call.version)
        declared = version.scopes if version is not None else {}
        if name not in declared:
            raise CapabilityDenied(f"scope {name!r} is not declared under [scopes] in miniapp.toml")
        account_id = await self.account(call.app_id, call.user_id, f"consent to {name!r}")
        if not await self.consents.granted(account_id, call.app_id, name):
            # no prompt from inside a call: the app says "denied"; the phone asks once, from the catalog
            raise ConsentDenied(f"the resident has not granted the scope {name!r}")
        if name == "health_color":  # the code's state, not the profile
            return await self.codes.health_colour(account_id)
        async with self.core.db.connection() as conn:
            if name.startswith(RESIDENCE_SCOPE):
                # a yes or no for the one county the app declared and the resident agreed to: never a place
                county = name.removeprefix(RESIDENCE_SCOPE)
                registered = await self.accounts.registered_in(conn, account_id, county)
                if registered is None:
                    raise ConsentDenied(f"the resident has not verified a real name, so {name!r} is unknown")
                return "true" if registered else "false"
            profile = await self.accounts.profile(conn, account_id)
        value = {
            "birth_date": profile.birth_date.isoformat() if profile.birth_date else None,
            "real_name_masked": profile.name_masked,
            "phone_masked": profile.phone_masked,
        }[name]
        if value is None:
            raise ConsentDenied(f"the resident has not verified a real name, so {name!r} is unknown")
        return str(value)

    async def _staff(self, call: CallInfo) -> c.StaffRoles:
        version = self.runtime.live_version(call.app_id, call.version)
        if call.user_id is None or version is None:
            return c.StaffRoles()
        account_id = await self.account(call.app_id, call.user_id, "hold staff roles")
        async with self.core.db.connection() as conn:
            rows = await staff_repository.memberships(conn, call.app_id, account_id)
        return c.StaffRoles(roles=[c.StaffRole(role=r, unit=u) for r, u in roles_held(version, rows)])

    # ---- notify ---------------------------------------------------------------------------------------

    async def _notify(self, call: CallInfo, op: c.NotifySend) -> str:
        target = op.user_id or call.user_id
        if target is None:
            raise InvalidArgument(
                "notify.send needs a resident: the call is anonymous and no user_id was given"
            )
        account_id = await self.account(call.app_id, target, "receive messages")
        now = _utc(self.clock())
        async with self.core.db.transaction() as conn:
            if (
                await repository.messages_today(conn, call.app_id, account_id, now - dt.timedelta(days=1))
                >= NOTIFY_PER_DAY
            ):
                raise QuotaExceeded(f"at most {NOTIFY_PER_DAY} messages per resident per day from one app")
            message_id = await repository.insert_message(
                conn, account_id, call.app_id, op.title, op.body, now
            )
        return f"msg_{message_id}"

    # ---- credentials ----------------------------------------------------------------------------------

    async def _verify(self, call: CallInfo, payload: str) -> c.Verification:
        if len(payload) > 4096:
            return c.Verification(valid=False, reason="credential.malformed")
        if payload.startswith(PASS_PREFIX):
            return await self.passes.check(call, payload)
        try:
            code = self.codes.verify_code(payload, self.clock())
        except CredentialError as exc:
            return c.Verification(valid=False, reason=exc.code)
        holder = self.codes.holder(code)
        user_id = health_color = None
        if holder is not None:
            # Only for a resident who uses this app: their id in it (never registered here, see known()), and
            # the colour only when they granted the `health_color` scope, since the colour is personal data.
            user_id = await self.known(call.app_id, holder)
            if user_id is not None and await self.consents.granted(holder, call.app_id, "health_color"):
                health_color = code.colour
        return c.Verification(valid=True, kind=code.kind, user_id=user_id, health_color=health_color)

    async def honour_pass(
        self, reader_app: str, claims: PassClaims, now: float | None = None
    ) -> tuple[str | None, str | None, int | None]:
        """Whether `reader_app` honours a pass (the scan sink's question): see AppPasses.honour."""
        return await self.passes.honour(reader_app, claims, now)

    # ---- payments -------------------------------------------------------------------------------------

    async def _charge(self, call: CallInfo, op: c.PaymentsCharge) -> c.Payment:
        account_id = await self.account(call.app_id, call.user_id, "be charged")
        async with self.core.db.transaction() as conn:
            row = await repository.insert_payment(
                conn,
                app_id=call.app_id,
                account_id=account_id,
                amount_fen=op.amount_fen,
                reason=op.reason,
                idempotency_key=op.idempotency_key,
                at=_utc(self.clock()),
            )
        if row["amount_fen"] != op.amount_fen:
            raise InvalidArgument(f"idempotency_key {op.idempotency_key!r} was used for another amount")
        return _payment(row)

    async def _payment_status(self, call: CallInfo, payment_id: str) -> c.Payment:
        async with self.core.db.connection() as conn:
            row = await repository.payment(conn, c.id_number(payment_id))
        if row is None or row["app_id"] != call.app_id:
            raise InvalidArgument(f"no payment {payment_id!r} for this app")
        return _payment(row)

    async def _cancel_payment(self, call: CallInfo, payment_id: str) -> c.Payment:
        """A pending payment ends `cancelled`; one the resident already decided answers as it stands. The row
        is locked as the resident's confirmation locks it: whichever comes second sees the other's decision,
        so a withdrawn fee is never charged and a charged one is reported for the app to refund."""
        async with self.core.db.transaction() as conn:
            row = await repository.payment(conn, c.id_number(payment_id), for_update=True)
            if row is None or row["app_id"] != call.app_id:
                raise InvalidArgument(f"no payment {payment_id!r} for this app")
            if row["status"] == "pending_confirmation":
                await repository.decide_payment(conn, row["id"], "cancelled", _utc(self.clock()), None, None)
                await audit.append(
                    conn,
                    actor=f"app:{call.app_id}",
                    action="payment.cancelled",
                    target=f"miniapp_payment:{row['id']}",
                )
                row = await repository.payment(conn, row["id"])
        return _payment(row)

    async def _refund(self, call: CallInfo, op: c.PaymentsRefund) -> c.Refund:
        if op.payment_id.startswith("ride_"):
            return await self._refund_ride(call, op)
        async with self.core.db.transaction() as conn:
            row = await repository.payment(conn, c.id_number(op.payment_id))
            if row is None or row["app_id"] != call.app_id:
                raise InvalidArgument(f"no payment {op.payment_id!r} for this app")
            if row["status"] != "succeeded" or row["charge_id"] is None:
                raise InvalidArgument(f"payment {op.payment_id!r} is {row['status']}: nothing to refund")
            try:
                async with conn.transaction():  # a savepoint: a refused refund writes nothing
                    done = await self.payments.refund(
                        conn,
                        charge_id=row["charge_id"],
                        amount_fen=op.amount_fen,
                        idempotency_key=f"miniapp:{op.idempotency_key}",
                        reason=op.reason,
                    )
            except IdempotencyKeyReused:
                raise InvalidArgument(
                    f"idempotency_key {op.idempotency_key!r} was used for another refund"
                ) from None
            except AppError as exc:
                if exc.code == REFUND_EXCEEDS_CHARGE:
                    raise InvalidArgument("refunds may not exceed what the payment charged") from None
                raise
            # the resident's payment list shows it (GET /v1/me/payments); a retried refund is listed once
            await repository.record_refund(
                conn,
                row["id"],
                amount_fen=done.amount_fen,
                refunded_fen=done.refunded_fen,
                reason=op.reason,
                idempotency_key=op.idempotency_key,
                at=_utc(self.clock()),
            )
        return c.Refund(payment_id=op.payment_id, amount_fen=done.amount_fen, refunded_fen=done.refunded_fen)

    async def _refund_ride(self, call: CallInfo, op: c.PaymentsRefund) -> c.Refund:
        """Part of an offline ride settlement charged at a terminal of this app's scene (`ride_<scan id>`)."""
        async with self.core.db.transaction() as conn:
            try:
                async with conn.transaction():  # a savepoint: a refused refund writes nothing
                    done = await self.payments.refund_ride(
                        conn,
                        scan_id=op.payment_id.removeprefix("ride_"),
                        app_id=call.app_id,
                        amount_fen=op.amount_fen,
                        idempotency_key=f"miniapp:{op.idempotency_key}",
                        reason=op.reason,
                    )
            except IdempotencyKeyReused:
                raise InvalidArgument(
                    f"idempotency_key {op.idempotency_key!r} was used for another refund"
                ) from None
            except AppError as exc:
                if exc.code == CHARGE_NOT_FOUND:
                    raise InvalidArgument(f"no settled ride {op.payment_id!r} for this app") from None
                if exc.code == REFUND_EXCEEDS_CHARGE:
                    raise InvalidArgument("refunds may not exceed what the ride charged") from None
                raise
        return c.Refund(payment_id=op.payment_id, amount_fen=done.amount_fen, refunded_fen=done.refunded_fen)


def _payment(row: Any) -> c.Payment:
    return c.Payment(
        id=f"pay_{row['id']}",
        status=row["status"],
        amount_fen=row["amount_fen"],
        reason=row["reason"],
        idempotency_key=row["idempotency_key"],
    )
