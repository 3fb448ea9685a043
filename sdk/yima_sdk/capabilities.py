"""Typed capability facades (`ctx.db`, `ctx.storage`, `ctx.user`, `ctx.notify`, `ctx.payments`, `ctx.credentials`,
`ctx.jobs`, `ctx.terminals`, `ctx.log`) and the values they return.

Each method builds one operation Struct of the contract (`yima_sdk.contract`), sends its fields as keyword
arguments over the bridge and converts the host's reply to the operation's reply type; a refusal comes back as
the yima_sdk error named in each docstring. Only `log` (served by the host itself) sends its event positionally.

A capability the manifest does not declare is not wrapped: the context then holds the raw proxy, so any call,
whatever its arguments, reaches the host and is refused there with `CapabilityDenied` (and counted).
Operations newer than this SDK stay reachable untyped: `await ctx.storage.some_new_op(x=1)`.
`ctx.db` and its `Transaction` live in `yima_sdk._db` (re-exported here), the shared base in `yima_sdk._facade`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from yima_sdk import contract as c
from yima_sdk._db import OUT_OF_TRANSACTION, Db, Transaction, new_id
from yima_sdk._facade import _Facade
from yima_sdk.contract import (
    AppPass,
    Document,
    DocumentVersion,
    Group,
    HeldEntry,
    Page,
    Payment,
    Record,
    RecordPage,
    Refund,
    StaffRole,
    StaffRoles,
    Verification,
    Written,
)

__all__ = [
    "OUT_OF_TRANSACTION",
    "AppPass",
    "Credentials",
    "Db",
    "Document",
    "DocumentVersion",
    "Group",
    "HeldEntry",
    "Jobs",
    "Log",
    "Notify",
    "Page",
    "Payment",
    "Payments",
    "Record",
    "RecordPage",
    "Refund",
    "StaffRole",
    "StaffRoles",
    "Storage",
    "Terminals",
    "Transaction",
    "User",
    "Verification",
    "Written",
    "new_id",
]


class Storage(_Facade):
    """Per-app namespaced documents with versions, compare-and-set, bounded counters and quotas.

    Keys are 1-200 characters without control characters; values are JSON-able and at most 64 KiB encoded.
    Writes over the app's storage quota raise QuotaExceeded.
    """

    __slots__ = ()

    async def get(self, key: str) -> Any:
        """The value stored under `key`, or None when there is none."""
        return await self._call(c.StorageGet(key=key))

    async def get_document(self, key: str) -> Document | None:
        """The value with its version (for a later compare-and-set `put`), or None."""
        document: Document | None = await self._call(c.StorageGetDocument(key=key))
        return document

    async def put(self, key: str, value: Any, *, expected_version: int | None = None) -> int:
        """Store `value`; returns the new version. `expected_version`: None writes unconditionally, 0 only
        creates (the key must not exist), n only replaces version n. Raises VersionConflict, QuotaExceeded,
        InvalidArgument."""
        return int(await self._call(c.StoragePut(key=key, value=value, expected_version=expected_version)))

    async def delete(self, key: str, *, expected_version: int | None = None) -> bool:
        """Remove `key`; True if it existed. Raises VersionConflict when `expected_version` is stale."""
        return bool(await self._call(c.StorageDelete(key=key, expected_version=expected_version)))

    async def list(self, prefix: str = "", cursor: str | None = None, limit: int = 50) -> Page:
        """Documents whose key starts with `prefix`, in key order, `limit` (1-100) per page."""
        page: Page = await self._call(c.StorageList(prefix=prefix, cursor=cursor, limit=limit))
        return page

    async def counter_add(
        self, name: str, delta: int = 1, *, min: int | None = None, max: int | None = None
    ) -> int:
        """Atomically add `delta` (may be negative) to counter `name` (starting at 0); returns the new value.
        If the result would leave [min, max] the counter is unchanged and CounterOutOfRange is raised: slot
        capacity is `counter_add("slots:2026-01-05", 1, max=40)`."""
        return int(await self._call(c.StorageCounterAdd(name=name, delta=delta, min=min, max=max)))

    async def counter_get(self, name: str) -> int:
        """The counter's current value (0 if never touched)."""
        return int(await self._call(c.StorageCounterGet(name=name)))


class User(_Facade):
    """Who is calling: the app-scoped pseudonymous id, and more only through consented scopes."""

    __slots__ = ("_caller",)

    def __init__(self, proxy: Any, caller: tuple[str | None] | None = None) -> None:
        super().__init__(proxy)
        self._caller = caller
        """The id the host sent with the call, when the facade was made for one (no round trip for `id`)."""

    async def id(self) -> str | None:
        """The caller's app-scoped id (the same resident gets a different id in every app), None if anonymous."""
        if self._caller is not None:
            return self._caller[0]
        user_id: str | None = await self._call(c.UserId())
        return user_id

    async def scope(self, name: str) -> str:
        """The value of a consented scope (`birth_date` "1950-03-02", `real_name_masked` "王*",
        `phone_masked` "138****0000", `health_color` "green"). Raises ConsentDenied when the resident has
        not granted it (or is anonymous), CapabilityDenied when the manifest does not list it in [scopes]."""
        return str(await self._call(c.UserScope(name=name)))  # type: ignore[arg-type]

    async def staff(self) -> StaffRoles:
        """The caller's staff roles in this app with their units (`roles.has("doctor", "clinic:c1")`); empty
        for residents holding none and for anonymous calls. Granted by an operator or the app's `admin`."""
        roles: StaffRoles = await self._call(c.UserStaff())
        return roles


class Notify(_Facade):
    """The resident inbox (subscribe-message style)."""

    __slots__ = ()

    async def send(self, title: str, body: str, *, user_id: str | None = None) -> str:
        """Put a message (title <= 40, body <= 500 characters) in the inbox of `user_id` (an app-scoped id;
        default: the caller); returns the message id. Raises QuotaExceeded, InvalidArgument."""
        return str(await self._call(c.NotifySend(title=title, body=body, user_id=user_id)))


class Payments(_Facade):
    """One-card charges: idempotent by key, confirmed by the resident."""

    __slots__ = ()

    async def charge(self, amount_fen: int, reason: str, idempotency_key: str) -> Payment:
        """Charge the caller's one-card `amount_fen` (1-1_000_000) fen for `reason` (shown to the resident).
        The same `idempotency_key` returns the same Payment and never charges twice (a different amount with
        a used key raises InvalidArgument). Raises PaymentFailed, PaymentDeclined, ConsentDenied (anonymous)."""
        op = c.PaymentsCharge(amount_fen=amount_fen, reason=reason, idempotency_key=idempotency_key)
        payment: Payment = await self._call(op)
        return payment

    async def status(self, payment_id: str) -> Payment:
        """The payment's current state (e.g. after the resident confirmed it)."""
        payment: Payment = await self._call(c.PaymentsStatus(payment_id=payment_id))
        return payment

    async def cancel(self, payment_id: str) -> Payment:
        """Withdraw a payment the resident has not confirmed yet (what it paid for was cancelled): it ends
        `cancelled` and can no longer be confirmed. Returns the payment as it now stands: `cancelled`, or
        what the resident decided first (`succeeded`: refund it; `declined`, `failed`: nothing was charged)."""
        payment: Payment = await self._call(c.PaymentsCancel(payment_id=payment_id))
        return payment

    async def refund(self, payment_id: str, amount_fen: int, reason: str, idempotency_key: str) -> Refund:
        """Give back `amount_fen` of a succeeded payment (a cancelled booking). The same `idempotency_key`
        returns the same refund; a payment not succeeded, or more than is left of it, raises InvalidArgument."""
        op = c.PaymentsRefund(
            payment_id=payment_id, amount_fen=amount_fen, reason=reason, idempotency_key=idempotency_key
        )
        refund: Refund = await self._call(op)
        return refund


class Credentials(_Facade):
    """Verify a scanned code; issue app passes (tickets, door plates) as signed QR payloads."""

    __slots__ = ()

    async def verify(self, payload: str) -> Verification:
        """Check a QR payload (Ankang code, ride code or one of this app's passes) against the trust list,
        validity and revocation. Never raises for a bad code: look at `valid` and `reason`."""
        verification: Verification = await self._call(c.CredentialsVerify(payload=payload))
        return verification

    async def issue_pass(
        self,
        kind: str,
        data: dict[str, Any],
        valid_until: int,
        *,
        user_id: str | None = None,
    ) -> AppPass:
        """Sign a pass of `kind` (e.g. "ticket") carrying `data` (small, JSON-able, no personal data) for
        `user_id` (default: the caller) until `valid_until` (Unix seconds). Raises InvalidArgument."""
        op = c.CredentialsIssuePass(kind=kind, data=data, valid_until=valid_until, user_id=user_id)
        app_pass: AppPass = await self._call(op)
        return app_pass

    async def revoke_pass(self, pass_id: str) -> bool:
        """Revoke one of this app's passes; True if it was valid until now."""
        return bool(await self._call(c.CredentialsRevokePass(pass_id=pass_id)))


class Jobs(_Facade):
    """One-shot delayed jobs (declared schedules run from `[jobs]` in miniapp.toml without a call)."""

    __slots__ = ()

    async def schedule(
        self,
        at: dt.datetime | dt.timedelta | float,
        name: str,
        data: dict[str, Any] | None = None,
        *,
        key: str | None = None,
    ) -> str:
        """Run `@app.job(name)` with `data` (JSON-able, at most 4 KiB) at `at`: an aware datetime or Unix
        seconds, or a timedelta from now (the platform's now: in the simulator it moves with `advance`). At
        most 30 days ahead; a time already past runs as soon as possible. Returns the job id; the same `key`
        returns the same job instead of a second one. Raises QuotaExceeded (too many pending one-shot jobs),
        InvalidArgument."""
        if isinstance(at, dt.timedelta):
            op = c.JobsSchedule(name=name, delay_s=at.total_seconds(), data=data or {}, key=key)
        else:
            when = at.timestamp() if isinstance(at, dt.datetime) else float(at)
            op = c.JobsSchedule(name=name, at=when, data=data or {}, key=key)
        return str(await self._call(op))

    async def cancel(self, job_id: str) -> bool:
        """Cancel a one-shot job; True if it was still pending."""
        return bool(await self._call(c.JobsCancel(job_id=job_id)))


class Terminals(_Facade):
    """What the terminals of the app's scenes sync with their trust list: documents (a bus app's fare table),
    signed by the platform and applied from each version's `effective_from`; and lists of small entries per staff
    unit (a spot's tickets of the day), by which a terminal decides offline (`yima_sdk.lists`)."""

    __slots__ = ()

    async def publish(
        self, name: str, version: int, effective_from: dt.datetime | float, content: dict[str, Any]
    ) -> DocumentVersion:
        """Publish `version` of document `name` (lower case, digits, `_`), in force from `effective_from` (an
        aware datetime or Unix seconds) until a later-effective version. Immutable: the same version again with
        the same content and time is a no-op (retry freely); other content raises VersionConflict. `content`
        is a JSON object of at most 64 KiB; `fares` must be that version's `yima_sdk.fares.FareTable`. Raises
        InvalidArgument, QuotaExceeded (200 versions of one name)."""
        when = effective_from.timestamp() if isinstance(effective_from, dt.datetime) else effective_from
        op = c.TerminalsPublish(name=name, version=version, effective_from=int(when), content=content)
        published: DocumentVersion = await self._call(op)
        return published

    async def published(self, name: str) -> list[DocumentVersion]:
        """The versions of `name` published so far, oldest effective first."""
        found: list[DocumentVersion] = await self._call(c.TerminalsPublished(name=name))
        return found

    async def hold(
        self,
        list: str,
        unit: str,
        key: str,
        value: dict[str, Any],
        expires_at: dt.datetime | float,
        *,
        valid_from: dt.datetime | float | None = None,
        user_id: str | None = None,
        pass_id: str | None = None,
    ) -> HeldEntry:
        """Hold entry `key` in list `list` (lower case, digits, `_`) for the terminals registered for staff unit
        `unit` (`spot:taiji-cave`): `value` (a JSON object of at most 512 bytes, no personal data) from
        `valid_from` (default: now) until `expires_at` (at most 30 days ahead). `user_id` (an app-scoped id) binds
        it to that resident, whom a terminal then finds by their Ankang code offline, without learning who they
        are (at most 7 days from `valid_from`); `pass_id` to one of the app's passes. The same entry again is a
        no-op; other content replaces it. Raises InvalidArgument, QuotaExceeded (10,000 live entries of a list at
        a unit)."""
        op = c.TerminalsHold(
            list=list, unit=unit, key=key, value=value, expires_at=int(_seconds(expires_at)),
            valid_from=None if valid_from is None else int(_seconds(valid_from)), user_id=user_id,
            pass_id=pass_id,
        )  # fmt: skip
        held: HeldEntry = await self._call(op)
        return held

    async def drop(self, list: str, unit: str, key: str) -> bool:
        """Drop entry `key` (a cancelled ticket): the unit's terminals forget it at their next sync. True if it
        was held."""
        return bool(await self._call(c.TerminalsDrop(list=list, unit=unit, key=key)))


def _seconds(at: dt.datetime | float) -> float:
    return at.timestamp() if isinstance(at, dt.datetime) else float(at)


class Log(_Facade):
    """Structured app log; the host scrubs secret-looking keys and identity-looking values."""

    __slots__ = ()

    async def debug(self, event: str, **fields: Any) -> None:
        await self._send("debug", event, **fields)

    async def info(self, event: str, **fields: Any) -> None:
        await self._send("info", event, **fields)

    async def warning(self, event: str, **fields: Any) -> None:
        await self._send("warning", event, **fields)

    async def error(self, event: str, **fields: Any) -> None:
        await self._send("error", event, **fields)
