"""The simulated platform: an in-memory capability provider serving every operation of the capability contract
(`yima_sdk.contract`) with production's rules and formats, fixture residents, and the switches a developer flips
to see the unhappy paths. Capabilities with state of their own are served by their modules (`_storage`, `_db`,
`_payments`, `_jobs`, `_documents`, `_credentials`); `handle` dispatches every operation."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from yima_sdk import contract as c
from yima_sdk._staff import route_role, unit_kind
from yima_sdk.errors import (
    CapabilityDenied,
    ConsentDenied,
    InvalidArgument,
    QuotaExceeded,
)
from yima_sdk.manifest import Manifest
from yima_sdk.simulator._credentials import DevCredentials
from yima_sdk.simulator._db import SimulatedDb
from yima_sdk.simulator._documents import SimulatedTerminals
from yima_sdk.simulator._fixtures import FIXTURE_USERS, FixtureUser
from yima_sdk.simulator._jobs import SimJob, SimulatedJobs
from yima_sdk.simulator._lists import SimulatedLists
from yima_sdk.simulator._payments import SimulatedPayments
from yima_sdk.simulator._storage import AppSpace, SimulatedStorage

__all__ = ["FIXTURE_USERS", "CallInfo", "FixtureUser", "SimJob", "SimulatedPlatform", "Switches"]

NOTIFY_PER_DAY = 20
"""Messages per resident per app per day, as production."""
JOBS_PENDING = 1000
"""Pending one-shot jobs per app, as production's default."""


class CallInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Who is asking: the app version and the call (with its app-scoped user id) a request belongs to."""

    app_id: str
    version: str
    call_id: int
    user_id: str | None = None


@dataclass
class Switches:
    """What to break. Flip them in tests (`miniapp.switches.consent_denied = True`) or with `yima-sdk dev`
    flags; every capability request reads them afresh."""

    consent_denied: bool = False
    """Every resident refuses every scope: `user.scope` raises ConsentDenied."""
    quota_exceeded: bool = False
    """The app's storage key quota is used up: a new key (`storage.put` of a new document, `storage.counter_add`
    of a new counter) raises QuotaExceeded."""
    payment_failure: bool = False
    """The one-card refuses every charge: a confirmed payment ends `failed` (nothing charged)."""
    refund_failure: bool = False
    """The one-card service is unreachable for refunds: `payments.refund` raises CapabilityFailed (nothing
    refunded; the app owes the refund and tries again later)."""
    payment_confirmation: Literal["manual", "auto", "decline"] = "manual"
    """How the simulated resident answers the confirmation sheet. `manual` (as production): the payment stays
    `pending_confirmation` until `confirm_payment(id)`; `auto`: confirmed at once; `decline`: declined at once."""


class SimulatedPlatform:
    """In-memory capability provider: `await handle(call, capability, operation, args, kwargs)`."""

    def __init__(
        self,
        manifest: Manifest,
        *,
        switches: Switches | None = None,
        users: dict[str, FixtureUser] | None = None,
        storage_quota: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.manifest = manifest
        self.switches = switches or Switches()
        self.users = dict(users or FIXTURE_USERS)
        self.storage_quota = storage_quota
        self.clock = clock
        self.space = AppSpace()
        """The `storage` capability's documents and counters."""
        self.storage = SimulatedStorage(self)
        self.inbox: list[dict[str, Any]] = []
        self.payments: dict[str, dict[str, Any]] = {}
        self.credentials = DevCredentials(manifest.id, lambda: self.clock())
        """Dev keys, the trust list (`credentials.trust_list_envelope`, `credentials.root_public_keys`)."""
        self.used: set[str] = set()
        """Fixture residents who called the app; only they are named to it by a code they show."""
        self.refused: set[tuple[str, str]] = set()
        """(resident name, scope) pairs the resident refused; every other declared scope is granted."""
        self._ids = itertools.count(1)
        self._by_app_id = {self.user_id(name): name for name in self.users}
        self.balances = {name: user.balance_fen for name, user in self.users.items()}
        """One-card balances in fen; a confirmed charge over the balance ends `failed`."""
        self.db = SimulatedDb(self)
        """The `db` capability's collections (`db.records`: (collection, id) -> record)."""
        self.jobs: dict[str, SimJob] = {}
        """Declared schedules and one-shot jobs by id; `AsyncSimulator.advance` runs those that fall due."""
        self.jobs_quota = JOBS_PENDING
        """Pending one-shot jobs the app may have, as production's per-app cap."""
        self.job_ops = SimulatedJobs(self)
        self.payment_ops = SimulatedPayments(self)
        self.terminals = SimulatedTerminals(self)
        self.documents: dict[tuple[str, int], tuple[int, bytes, bytes]] = {}
        """Terminal documents (`ctx.terminals.publish`): (name, version) -> (effective_from, content, envelope)."""
        self.documents_quota = c.MAX_DOCUMENT_VERSIONS
        """Versions of one document the app may publish, as production's cap."""
        self.lists = SimulatedLists(self)
        """Terminal lists (`ctx.terminals.hold`); `terminal_lists(unit)` is what a unit's terminal syncs."""
        self.staff: dict[str, set[tuple[str, str | None]]] = {}
        """Fixture resident name -> the (role, unit) memberships `grant_staff` gave them."""
        self.share_refused: set[tuple[str, str]] = set()
        """(resident name, issuing app) shares the resident refused; other apps' passes from `pass_from` are
        honoured otherwise (the simulator grants what is declared, as it does scopes)."""

    def next_id(self) -> int:
        """The next number of the app's ids (jobs, messages, payments), shared as production's sequence is."""
        return next(self._ids)

    # ---- fixture residents --------------------------------------------------------------------------

    def user_id(self, name: str) -> str:
        """The app-scoped id of fixture resident `name` in this app, in production's format (`u_` + 26 base32
        characters), stable for an app id and different in every app."""
        if name not in self.users:
            raise KeyError(f"no fixture user {name!r}; known: {', '.join(sorted(self.users))}")
        return _app_user_id(self.manifest.id, name)

    def resident(self, user_id: str | None) -> FixtureUser | None:
        name = self._by_app_id.get(user_id or "")
        return None if name is None else self.users[name]

    def use(self, user_id: str | None) -> None:
        """The resident behind `user_id` called the app (as a gateway call records it in production)."""
        resident = self.resident(user_id)
        if resident is not None:
            self.used.add(resident.name)

    def _reachable(self, user_id: str) -> FixtureUser:
        """The resident behind `user_id` if they used the app; `notify` and `payments` reach no one else.

        As production: only a resident's own call links them to an app (a code shown to a terminal or to the app's
        `credentials.verify` does not), and an app-scoped id of anyone else is unknown to the app."""
        resident = self.resident(user_id)
        if resident is None or resident.name not in self.used:
            raise InvalidArgument(f"no resident with app-scoped id {user_id!r} in this app")
        return resident

    def _user_of_app(self, name: str) -> str | None:
        # a code shown to the app names its holder only if the holder uses the app, as in production
        return self.user_id(name) if name in self.used else None

    def _shows_colour(self, name: str) -> bool:
        # the colour is personal data: only under a declared, granted `health_color` scope
        return (
            "health_color" in self.manifest.scopes
            and not self.switches.consent_denied
            and (name, "health_color") not in self.refused
        )

    def set_consent(self, name: str, scope: str, granted: bool) -> None:
        """Fixture resident `name` grants or refuses `scope` (as in the phone's catalog)."""
        if granted:
            self.refused.discard((name, scope))
        else:
            self.refused.add((name, scope))

    # ---- staff roles ------------------------------------------------------------------------------

    def grant_staff(self, name: str, role: str, unit: str | None = None) -> None:
        """Fixture resident `name` becomes staff: `role` (declared under [staff.roles]) at `unit` (`kind:id`,
        the kind declared under [staff.units]; None: app-wide), as an operator or the app's admin grants it."""
        self.user_id(name)  # a KeyError naming the fixture residents
        if role not in self.manifest.staff.roles:
            raise ValueError(f"role {role!r} is not declared under [staff.roles] in miniapp.toml")
        if unit is not None and unit_kind(unit) not in self.manifest.staff.units:
            raise ValueError(f"unit {unit!r}: its kind is not declared under [staff.units] in miniapp.toml")
        self.staff.setdefault(name, set()).add((role, unit))

    def revoke_staff(self, name: str, role: str, unit: str | None = None) -> None:
        """Take the membership back; it is gone from the next call on."""
        self.staff.get(name, set()).discard((role, unit))

    def staff_roles(self, user_id: str | None) -> c.StaffRoles:
        """The memberships of the resident behind `user_id` whose role the manifest declares, in production's
        order (role, then app-wide before units, then unit)."""
        resident = self.resident(user_id)
        held = self.staff.get(resident.name, set()) if resident is not None else set()
        return c.StaffRoles(
            roles=[
                c.StaffRole(role=role, unit=unit)
                for role, unit in sorted(held, key=lambda m: (m[0], m[1] or ""))
                if role in self.manifest.staff.roles
            ]
        )

    def staff_route_refusal(self, method: str, path: str, user_id: str | None) -> str | None:
        """The role a staff route needs when the caller does not hold it (the gateway then answers 403
        `miniapp.staff_required` before the app runs), else None."""
        role = route_role(self.manifest.staff, method, path)
        if role is None or self.staff_roles(user_id).has(role):
            return None
        return role

    # ---- passes from other apps -------------------------------------------------------------------------

    def pass_from(
        self, issuer: str, name: str, kind: str, data: dict[str, Any], *, valid_s: int = 3600
    ) -> str:
        """A pass app `issuer` signed for fixture resident `name`, as if `issuer` declared
        `share_passes_with` this app: `credentials.verify` honours it unless the resident refused the share
        (`set_share_consent`). The payload is in the production format, signed with the simulator's pass key."""
        if issuer == self.manifest.id:
            raise ValueError("pass_from is for other apps' passes; this app issues its own with issue_pass")
        self.user_id(name)  # a KeyError naming the fixture residents
        holder = _app_user_id(issuer, name)  # the resident's id in the issuing app
        return self.credentials.issue_shared(issuer, holder, name, kind, data, int(self.clock()) + valid_s)

    def set_share_consent(self, name: str, issuer: str, granted: bool) -> None:
        """Fixture resident `name` grants or refuses (revokes) app `issuer` sharing its passes with this app."""
        if granted:
            self.share_refused.discard((name, issuer))
        else:
            self.share_refused.add((name, issuer))

    def _share_consented(self, name: str, issuer: str) -> bool:
        return (name, issuer) not in self.share_refused

    def ankang_code(self, name: str, *, valid_s: int = 60) -> str:
        """An Ankang code of fixture resident `name` in the production format (`YA:` + Base45, Ed25519), signed
        with the simulator's dev issuer key: it verifies with `credentials.verify` and on a terminal that
        trusts `credentials.trust_list_envelope`."""
        return self.credentials.ankang_code(name, self.users[name].health_color, valid_s=valid_s)

    def confirm_payment(self, payment_id: str, *, accept: bool = True) -> dict[str, Any]:
        """The simulated resident answers the confirmation sheet of a pending payment."""
        return self.payment_ops.confirm(payment_id, accept=accept)

    def settled_ride(self, name: str, amount_fen: int) -> str:
        """Fixture resident `name`'s card pays an offline ride as settlement charges it; its refundable id."""
        return self.payment_ops.settled_ride(name, amount_fen)

    def balance(self, name: str) -> int:
        """Fixture resident `name`'s one-card balance now, in fen."""
        return self.balances[name]

    # ---- the provider ---------------------------------------------------------------------------------

    async def handle(
        self, call: CallInfo, capability: str, operation: str, args: list[Any], kwargs: dict[str, Any]
    ) -> Any:
        op = c.decode_operation(capability, operation, args, kwargs)
        match op:
            case (
                c.StorageGet()
                | c.StorageGetDocument()
                | c.StoragePut()
                | c.StorageDelete()
                | c.StorageList()
                | c.StorageCounterAdd()
                | c.StorageCounterGet()
            ):
                return self.storage.handle(op)
            case c.UserId():
                return call.user_id
            case c.UserScope():
                return self._scope(call, op)
            case c.UserStaff():
                return self.staff_roles(call.user_id)
            case c.NotifySend():
                return self._notify(call, op)
            case c.PaymentsCharge():
                return self.payment_ops.charge(call, op)
            case c.PaymentsStatus():
                return self.payment_ops.status(op)
            case c.PaymentsRefund():
                return self.payment_ops.refund(op)
            case c.PaymentsCancel():
                return self.payment_ops.cancel(op)
            case c.CredentialsVerify():
                return self.credentials.verify(
                    op.payload, self._user_of_app, self._shows_colour, self._share_consented
                )
            case c.CredentialsIssuePass():
                c.check_pass(op, self.clock())
                return self.credentials.issue_pass(op, op.user_id or call.user_id)
            case c.CredentialsRevokePass():
                return self.credentials.revoke_pass(op.pass_id)
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
                return self.db.handle(op)
            case c.JobsSchedule():
                return self.job_ops.schedule(op)
            case c.JobsCancel():
                return self.job_ops.cancel(op)
            case c.TerminalsPublish():
                return self.terminals.publish(op)
            case c.TerminalsPublished():
                return self.terminals.published(op.name)
            case c.TerminalsHold():
                return self.lists.hold(op)
            case c.TerminalsDrop():
                return self.lists.drop(op)
        raise CapabilityDenied(f"{c.operation_name(op)} is not served by the simulator")

    # terminal documents and jobs, as production settles and runs them

    def settle_ride(self, unit: str | None, at: dt.datetime, amount_fen: int) -> int | None:
        """What production's settlement charges for an offline ride code the terminal priced at `amount_fen`
        (see SimulatedTerminals.settle_ride)."""
        return self.terminals.settle_ride(unit, at, amount_fen)

    def terminal_documents(self) -> bytes:
        """What `GET /v1/terminal/documents` answers a terminal of this app's scenes (see
        SimulatedTerminals.terminal_documents)."""
        return self.terminals.terminal_documents()

    def terminal_lists(self, unit: str, after: int = 0) -> bytes:
        """What `GET /v1/terminal/lists?after=N` answers a terminal of this app's scenes registered for `unit`
        (see SimulatedLists.changes), for `yima_sdk.terminal.Terminal.load_lists`."""
        return self.lists.changes(unit, after)

    def schedule_job(self, name: str, data: dict[str, Any] | None = None, *, key: str | None = None) -> str:
        """A one-shot job due now, scheduled from outside the app, as `yima dev` schedules a local app's
        `seed` job; `advance()` runs it. The job id."""
        return self.job_ops.schedule(c.JobsSchedule(name=name, delay_s=0, data=data or {}, key=key))

    def next_job(self, until: float) -> SimJob | None:
        """The pending job to run first among those due by `until`, if any."""
        return self.job_ops.next_job(until)

    def job_ran(self, job: SimJob, ok: bool) -> float | None:
        """Record a run of `job` (see SimulatedJobs.job_ran); the delay before it runs again, if it does."""
        return self.job_ops.job_ran(job, ok)

    # user

    def _scope(self, call: CallInfo, op: c.UserScope) -> str:
        if op.name not in self.manifest.scopes:
            raise CapabilityDenied(f"scope {op.name!r} is not declared under [scopes] in miniapp.toml")
        resident = self.resident(call.user_id)
        if resident is None:
            raise ConsentDenied(f"an anonymous caller cannot consent to {op.name!r}")
        if self.switches.consent_denied or (resident.name, op.name) in self.refused:
            raise ConsentDenied(f"the resident has not granted the scope {op.name!r}")
        return resident.scope(op.name)

    # notify

    def _notify(self, call: CallInfo, op: c.NotifySend) -> str:
        target = op.user_id or call.user_id
        if target is None:
            raise InvalidArgument(
                "notify.send needs a resident: the call is anonymous and no user_id was given"
            )
        self._reachable(target)
        now = self.clock()
        recent = [m for m in self.inbox if m["user_id"] == target and m["at"] > now - 86400]
        if len(recent) >= NOTIFY_PER_DAY:
            raise QuotaExceeded(f"at most {NOTIFY_PER_DAY} messages per resident per day from one app")
        message_id = f"msg_{self.next_id()}"
        self.inbox.append(
            {"id": message_id, "user_id": target, "title": op.title, "body": op.body, "at": now}
        )
        return message_id


def _app_user_id(app_id: str, name: str) -> str:
    digest = hashlib.sha256(f"{app_id}\0{name}".encode()).digest()[:16]
    return "u_" + base64.b32encode(digest).decode().rstrip("=").lower()


def holder_ref(app_id: str, issuer: int, holder: str) -> str:
    """A partner county's code holder's pseudonym in app `app_id` (ScanData.holder_ref), as production shapes it:
    the same for one holder's scans in one app, another in every other app, never the holder's name."""
    digest = hashlib.sha256(f"holder\0{app_id}\0{issuer}\0{holder}".encode()).digest()[:16]
    return "h_" + base64.b32encode(digest).decode().rstrip("=").lower()
