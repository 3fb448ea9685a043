"""The simulated platform: an in-memory capability provider serving every operation of the capability contract
(`yima_sdk.contract`) with production's rules and formats, fixture residents, and the switches a developer flips
to see the unhappy paths."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from yima_sdk import contract as c
from yima_sdk._staff import route_role, unit_kind
from yima_sdk.cron import parse_cron
from yima_sdk.errors import (
    CapabilityDenied,
    ConsentDenied,
    CounterOutOfRange,
    InvalidArgument,
    QuotaExceeded,
    VersionConflict,
)
from yima_sdk.fares import FareError, FareSchedule, FareTable, settlement_fare
from yima_sdk.manifest import RESIDENCE_SCOPE, Manifest
from yima_sdk.simulator._credentials import DevCredentials
from yima_sdk.simulator._db import SimulatedDb

__all__ = ["FIXTURE_USERS", "CallInfo", "FixtureUser", "SimJob", "SimulatedPlatform", "Switches"]

NOTIFY_PER_DAY = 20
"""Messages per resident per app per day, as production."""
JOBS_PENDING = 1000
"""Pending one-shot jobs per app, as production's default."""
_json = msgspec.json.Encoder()


class CallInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Who is asking: the app version and the call (with its app-scoped user id) a request belongs to."""

    app_id: str
    version: str
    call_id: int
    user_id: str | None = None


@dataclass(frozen=True)
class FixtureUser:
    """A made-up resident (no real personal data) with the values of every scope and a one-card balance."""

    name: str
    birth_date: str
    real_name_masked: str
    phone_masked: str
    health_color: Literal["green", "yellow", "red"]
    balance_fen: int = 10_000
    registered_county: str = "341822"
    """Where the real-name identity is registered (Guangde unless said): only `registered_in:<code>` tells it,
    as true or false."""

    def scope(self, scope: str) -> str:
        if scope.startswith(RESIDENCE_SCOPE):
            return "true" if scope.removeprefix(RESIDENCE_SCOPE) == self.registered_county else "false"
        return str(getattr(self, scope))


FIXTURE_USERS: dict[str, FixtureUser] = {
    user.name: user
    for user in (
        FixtureUser("alice", "1990-05-14", "李*", "139****0001", "green"),
        FixtureUser("grandpa", "1948-02-01", "王*", "138****0002", "green", balance_fen=5_000),
        FixtureUser(
            "carol", "2001-11-30", "陈*", "137****0003", "yellow", balance_fen=0, registered_county="320481"
        ),
    )
}
"""`alice` (adult, green), `grandpa` (born 1948: concessions), `carol` (yellow code, empty one-card, registered
in Liyang 320481; the others in Guangde 341822)."""


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
    payment_confirmation: Literal["manual", "auto", "decline"] = "manual"
    """How the simulated resident answers the confirmation sheet. `manual` (as production): the payment stays
    `pending_confirmation` until `confirm_payment(id)`; `auto`: confirmed at once; `decline`: declined at once."""


@dataclass
class SimJob:
    """A one-shot job (`ctx.jobs.schedule`) or a declared schedule (`[jobs]`, `schedule` set), as production
    keeps it: due at `due`, tried next at `run_at` (later after a failure), `attempt` runs so far."""

    id: str
    name: str
    due: float
    run_at: float
    data: dict[str, Any] = field(default_factory=dict)
    schedule: str | None = None
    attempt: int = 0
    status: Literal["pending", "done", "failed", "cancelled"] = "pending"

    @property
    def job_id(self) -> str:
        """What the handler sees: the job's id, and for a schedule the Unix time of this firing."""
        return self.id if self.schedule is None else f"{self.id}.{int(self.due)}"


@dataclass
class _Doc:
    value: Any
    version: int


@dataclass
class _AppSpace:
    docs: dict[str, _Doc] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)


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
        self.space = _AppSpace()
        self.inbox: list[dict[str, Any]] = []
        self.payments: dict[str, dict[str, Any]] = {}
        self.credentials = DevCredentials(manifest.id, lambda: self.clock())
        """Dev keys, the trust list (`credentials.trust_list_envelope`, `credentials.root_public_keys`)."""
        self.used: set[str] = set()
        """Fixture residents who called the app; only they are named to it by a code they show."""
        self.refused: set[tuple[str, str]] = set()
        """(resident name, scope) pairs the resident refused; every other declared scope is granted."""
        self._idempotency: dict[tuple[str, str], str] = {}
        self._refunds: dict[tuple[str, str], dict[str, Any]] = {}
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
        self._job_keys: dict[str, str] = {}
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        for name, expression in manifest.jobs.items():
            due = parse_cron(expression).next_after(now).timestamp()
            job = SimJob(id=f"job_{next(self._ids)}", name=name, due=due, run_at=due, schedule=expression)
            self.jobs[job.id] = job
        self.documents: dict[tuple[str, int], tuple[int, bytes, bytes]] = {}
        """Terminal documents (`ctx.terminals.publish`): (name, version) -> (effective_from, content, envelope)."""
        self.documents_quota = c.MAX_DOCUMENT_VERSIONS
        """Versions of one document the app may publish, as production's cap."""
        self.staff: dict[str, set[tuple[str, str | None]]] = {}
        """Fixture resident name -> the (role, unit) memberships `grant_staff` gave them."""
        self.share_refused: set[tuple[str, str]] = set()
        """(resident name, issuing app) shares the resident refused; other apps' passes from `pass_from` are
        honoured otherwise (the simulator grants what is declared, as it does scopes)."""

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
        payment = self.payments[payment_id]
        if payment["status"] == "pending_confirmation":
            if accept:
                self._settle(payment)
            else:
                payment["status"] = "declined"
        return dict(payment)

    def settled_ride(self, name: str, amount_fen: int) -> str:
        """Fixture resident `name`'s card pays an offline ride as settlement charges it; its refundable id."""
        self.balances[name] -= amount_fen
        payment_id = f"ride_{uuid.uuid4()}"
        payment: dict[str, Any] = {
            "id": payment_id,
            "status": "succeeded",
            "amount_fen": amount_fen,
            "reason": "offline ride",
            "idempotency_key": "",
            "user_id": self.user_id(name),
        }
        self.payments[payment_id] = payment
        return payment_id

    def balance(self, name: str) -> int:
        """Fixture resident `name`'s one-card balance now, in fen."""
        return self.balances[name]

    # ---- the provider ---------------------------------------------------------------------------------

    async def handle(
        self, call: CallInfo, capability: str, operation: str, args: list[Any], kwargs: dict[str, Any]
    ) -> Any:
        op = c.decode_operation(capability, operation, args, kwargs)
        match op:
            case c.StorageGet():
                doc = self.space.docs.get(op.key)
                return None if doc is None else doc.value
            case c.StorageGetDocument():
                doc = self.space.docs.get(op.key)
                return None if doc is None else c.Document(key=op.key, value=doc.value, version=doc.version)
            case c.StoragePut():
                return self._put(op)
            case c.StorageDelete():
                doc = self.space.docs.get(op.key)
                _check_version(op.key, doc, op.expected_version)
                return self.space.docs.pop(op.key, None) is not None
            case c.StorageList():
                return self._list(op)
            case c.StorageCounterAdd():
                return self._counter_add(op)
            case c.StorageCounterGet():
                return self.space.counters.get(op.name, 0)
            case c.UserId():
                return call.user_id
            case c.UserScope():
                return self._scope(call, op)
            case c.UserStaff():
                return self.staff_roles(call.user_id)
            case c.NotifySend():
                return self._notify(call, op)
            case c.PaymentsCharge():
                return self._charge(call, op)
            case c.PaymentsStatus():
                payment = self.payments.get(op.payment_id)
                if payment is None:
                    raise InvalidArgument(f"no payment {op.payment_id!r} for this app")
                return _payment(payment)
            case c.PaymentsRefund():
                return self._refund(op)
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
                return self._schedule(op)
            case c.JobsCancel():
                job = self.jobs.get(op.job_id)
                if job is None or job.schedule is not None or job.status != "pending":
                    return False
                job.status = "cancelled"
                return True
            case c.TerminalsPublish():
                return self._publish(op)
            case c.TerminalsPublished():
                return self._published(op.name)
        raise CapabilityDenied(f"{c.operation_name(op)} is not served by the simulator")

    # storage

    def _put(self, op: c.StoragePut) -> int:
        try:
            encoded = _json.encode(op.value)
        except (TypeError, msgspec.EncodeError):
            raise InvalidArgument(
                "storage values must be JSON-able (dicts, lists, strings, numbers)"
            ) from None
        if len(encoded) > c.MAX_VALUE_BYTES:
            raise InvalidArgument(f"value of {len(encoded)} bytes is over the {c.MAX_VALUE_BYTES}-byte limit")
        doc = self.space.docs.get(op.key)
        _check_version(op.key, doc, op.expected_version)
        if self.switches.quota_exceeded or (doc is None and self._keys_full()):
            raise QuotaExceeded("the app's storage quota is used up")
        version = 1 if doc is None else doc.version + 1
        self.space.docs[op.key] = _Doc(msgspec.json.decode(encoded), version)  # stored as JSON, as production
        return version

    def _list(self, op: c.StorageList) -> c.Page:
        after = op.cursor or ""
        keys = sorted(k for k in self.space.docs if k.startswith(op.prefix) and k > after)
        page = keys[: op.limit]
        items = [
            c.Document(key=k, value=self.space.docs[k].value, version=self.space.docs[k].version)
            for k in page
        ]
        return c.Page(items=items, cursor=page[-1] if len(keys) > op.limit else None)

    def _keys_full(self) -> bool:
        # documents and counters share the key quota, as in production
        return len(self.space.docs) + len(self.space.counters) + len(self.db.records) >= self.storage_quota

    def _counter_add(self, op: c.StorageCounterAdd) -> int:
        if op.name not in self.space.counters:
            # a counter is a key from its creation, even when this first add is then out of range
            if self.switches.quota_exceeded or self._keys_full():
                raise QuotaExceeded("the app's storage quota is used up")
            self.space.counters[op.name] = 0
        value = self.space.counters[op.name] + op.delta
        if (op.min is not None and value < op.min) or (op.max is not None and value > op.max):
            raise CounterOutOfRange(f"counter {op.name!r} would leave [{op.min}, {op.max}]; it is unchanged")
        self.space.counters[op.name] = value
        return value

    # terminal documents

    def _publish(self, op: c.TerminalsPublish) -> c.DocumentVersion:
        content = c.check_document(op)
        reply = c.DocumentVersion(name=op.name, version=op.version, effective_from=op.effective_from)
        held = self.documents.get((op.name, op.version))
        if held is not None:
            if held[:2] != (op.effective_from, content):
                raise VersionConflict(f"{op.name} version {op.version} is published with other content")
            return reply
        if sum(1 for name, _ in self.documents if name == op.name) >= self.documents_quota:
            raise QuotaExceeded(f"at most {self.documents_quota} versions of {op.name} may be published")
        envelope = self.credentials.sign_document(op.name, op.version, op.effective_from, content)
        self.documents[(op.name, op.version)] = (op.effective_from, content, envelope)
        return reply

    def _published(self, name: str) -> list[c.DocumentVersion]:
        found = [
            c.DocumentVersion(name=n, version=v, effective_from=held[0])
            for (n, v), held in self.documents.items()
            if n == name
        ]
        return sorted(found, key=lambda d: (d.effective_from, d.version))

    def settle_ride(self, unit: str | None, at: dt.datetime, amount_fen: int) -> int | None:
        """What production's settlement charges for an offline ride code the terminal priced at `amount_fen`:
        re-priced by the published `fares` version in force at `at` for the line of a `line:<id>` unit, else
        the terminal's amount (no fares published, a terminal without a line); None (nothing charged) when the
        published tables cannot price it."""
        tables = [
            FareTable.from_json(held[1]) for (n, _), held in self.documents.items() if n == c.FARES_DOCUMENT
        ]
        if not tables or unit is None or not unit.startswith("line:"):
            return amount_fen
        try:
            return settlement_fare(FareSchedule(tables), unit.removeprefix("line:"), at)
        except FareError:
            return None  # production refuses to charge a ride its tables cannot price

    def terminal_documents(self) -> bytes:
        """What `GET /v1/terminal/documents` answers a terminal of this app's scenes: every published version,
        signed by the simulator's root (`credentials.root_public_keys`), for `Terminal.load_documents`."""
        return b'{"documents":[' + b",".join(held[2] for held in self.documents.values()) + b"]}"

    # jobs

    def _schedule(self, op: c.JobsSchedule) -> str:
        due, encoded = c.check_job(op, self.clock())
        if op.key is not None and op.key in self._job_keys:
            return self._job_keys[op.key]
        pending = sum(1 for j in self.jobs.values() if j.schedule is None and j.status == "pending")
        if pending >= self.jobs_quota:
            raise QuotaExceeded(f"at most {self.jobs_quota} one-shot jobs may be pending per app")
        job = SimJob(
            id=f"job_{next(self._ids)}",
            name=op.name,
            due=due,
            run_at=due,
            data=msgspec.json.decode(encoded),  # stored as JSON, as production
        )
        self.jobs[job.id] = job
        if op.key is not None:
            self._job_keys[op.key] = job.id
        return job.id

    def schedule_job(self, name: str, data: dict[str, Any] | None = None, *, key: str | None = None) -> str:
        """A one-shot job due now, scheduled from outside the app, as `yima dev` schedules a local app's
        `seed` job; `advance()` runs it. The job id."""
        return self._schedule(c.JobsSchedule(name=name, delay_s=0, data=data or {}, key=key))

    def next_job(self, until: float) -> SimJob | None:
        """The pending job to run first among those due by `until`, if any."""
        due = [j for j in self.jobs.values() if j.status == "pending" and j.run_at <= until]
        return min(due, key=lambda j: (j.run_at, j.id), default=None)

    def job_ran(self, job: SimJob, ok: bool) -> float | None:
        """Record a run of `job` (its attempt already counted): done, or due again after a pause (its
        delay is returned), or given up after the last attempt. A schedule moves on to its next firing."""
        now = self.clock()
        if not ok and job.attempt < c.JOB_ATTEMPTS:
            delay = c.job_retry_delay(job.attempt)
            job.run_at = now + delay
            return delay
        if job.schedule is None:
            job.status = "done" if ok else "failed"
            return None
        after = dt.datetime.fromtimestamp(max(job.due, now), dt.UTC)
        job.due = job.run_at = parse_cron(job.schedule).next_after(after).timestamp()
        job.attempt = 0
        return None

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
        message_id = f"msg_{next(self._ids)}"
        self.inbox.append(
            {"id": message_id, "user_id": target, "title": op.title, "body": op.body, "at": now}
        )
        return message_id

    # payments

    def _charge(self, call: CallInfo, op: c.PaymentsCharge) -> c.Payment:
        if call.user_id is None:
            raise ConsentDenied("an anonymous caller cannot be charged")
        self._reachable(call.user_id)
        known = self._idempotency.get((str(call.user_id), op.idempotency_key))
        if known is not None:
            payment = self.payments[known]
            if payment["amount_fen"] != op.amount_fen:
                raise InvalidArgument(f"idempotency_key {op.idempotency_key!r} was used for another amount")
            return _payment(payment)
        payment = {
            "id": f"pay_{next(self._ids)}",
            "status": "pending_confirmation",
            "amount_fen": op.amount_fen,
            "reason": op.reason,
            "idempotency_key": op.idempotency_key,
            "user_id": call.user_id,
        }
        self.payments[payment["id"]] = payment
        self._idempotency[(str(call.user_id), op.idempotency_key)] = payment["id"]
        if self.switches.payment_confirmation != "manual":
            self.confirm_payment(payment["id"], accept=self.switches.payment_confirmation == "auto")
        return _payment(payment)

    def _refund(self, op: c.PaymentsRefund) -> c.Refund:
        payment = self.payments.get(op.payment_id)
        if payment is None:
            raise InvalidArgument(f"no payment {op.payment_id!r} for this app")
        known = self._refunds.get((op.payment_id, op.idempotency_key))
        if known is not None:
            if (known["amount_fen"], known["reason"]) != (op.amount_fen, op.reason):
                raise InvalidArgument(f"idempotency_key {op.idempotency_key!r} was used for another refund")
            return c.Refund(
                payment_id=op.payment_id, amount_fen=known["amount_fen"], refunded_fen=known["refunded_fen"]
            )
        if payment["status"] != "succeeded":
            raise InvalidArgument(f"payment {op.payment_id!r} is {payment['status']}: nothing to refund")
        refunded = payment.get("refunded_fen", 0) + op.amount_fen
        if refunded > payment["amount_fen"]:
            raise InvalidArgument("refunds may not exceed what the payment charged")
        payment["refunded_fen"] = refunded
        resident = self.resident(payment["user_id"])
        assert resident is not None
        self.balances[resident.name] += op.amount_fen
        self._refunds[(op.payment_id, op.idempotency_key)] = {
            "amount_fen": op.amount_fen,
            "reason": op.reason,
            "refunded_fen": refunded,
        }
        return c.Refund(payment_id=op.payment_id, amount_fen=op.amount_fen, refunded_fen=refunded)

    def _settle(self, payment: dict[str, Any]) -> None:
        resident = self.resident(payment["user_id"])
        assert resident is not None
        balance = self.balances[resident.name]
        if self.switches.payment_failure or balance < payment["amount_fen"]:
            payment["status"] = "failed"
            return
        self.balances[resident.name] = balance - payment["amount_fen"]
        payment["status"] = "succeeded"


def _app_user_id(app_id: str, name: str) -> str:
    digest = hashlib.sha256(f"{app_id}\0{name}".encode()).digest()[:16]
    return "u_" + base64.b32encode(digest).decode().rstrip("=").lower()


def _payment(payment: dict[str, Any]) -> c.Payment:
    return c.Payment(
        id=payment["id"],
        status=payment["status"],
        amount_fen=payment["amount_fen"],
        reason=payment["reason"],
        idempotency_key=payment["idempotency_key"],
    )


def _check_version(key: str, doc: _Doc | None, expected: int | None) -> None:
    if expected is None:
        return
    current = 0 if doc is None else doc.version
    if current != expected:
        raise VersionConflict(f"{key!r} is at version {current}, not {expected}")
