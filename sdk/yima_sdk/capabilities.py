"""Typed capability facades (`ctx.storage`, `ctx.user`, `ctx.notify`, `ctx.payments`, `ctx.credentials`,
`ctx.log`) and the values they return.

Each method sends exactly one capability request (capability, operation, args, kwargs) over the bridge and
awaits the host's reply; docs/sdk.md "Capability operations" is the wire contract a host's capability provider
implements. Arguments travel as kwargs named like the parameters below (only `log` sends its event
positionally), and a refusal comes back as the yima_sdk error named in each docstring.

A capability the manifest does not declare is not wrapped: the context then holds the raw proxy, so any call,
whatever its arguments, reaches the host and is refused there with `CapabilityDenied` (and counted).
Operations newer than this SDK stay reachable untyped: `await ctx.storage.some_new_op(x=1)`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import msgspec

__all__ = [
    "AppPass",
    "Credentials",
    "Document",
    "Log",
    "Notify",
    "Page",
    "Payment",
    "Payments",
    "Storage",
    "User",
    "Verification",
]


class _Reply(msgspec.Struct, frozen=True, kw_only=True):
    """Base of capability replies. Unknown fields are accepted on purpose: the platform appends fields with
    defaults, and an app built on an older SDK must keep working against a newer platform."""


class Document(_Reply, frozen=True):
    """One stored value with its version (1 after the first put, +1 per put)."""

    key: str
    value: Any
    version: int


class Page(_Reply, frozen=True):
    """A page of `storage.list`; pass `cursor` back to get the next page (None: no more)."""

    items: list[Document]
    cursor: str | None = None


class Payment(_Reply, frozen=True):
    """A one-card charge. `pending_confirmation`: the resident's super-app shows a confirmation sheet; ask
    `payments.status(id)` later. `succeeded`: money moved. `declined`/`failed`: nothing was charged."""

    id: str
    status: Literal["pending_confirmation", "succeeded", "declined", "failed"]
    amount_fen: int
    reason: str
    idempotency_key: str


class AppPass(_Reply, frozen=True):
    """A pass the platform signed for this app (e.g. a scenic-spot ticket); `payload` is the QR text."""

    id: str
    kind: str
    payload: str
    valid_until: int
    """Unix seconds."""


class Verification(_Reply, frozen=True):
    """What `credentials.verify` learnt from a scanned payload; `reason` is a stable code when not valid."""

    valid: bool
    reason: str = ""
    """Empty when valid, else e.g. `credential.expired`, `credential.bad_signature`, `credential.malformed`."""
    kind: str = ""
    """`ankang_code`, `ride_code` or `app_pass`."""
    user_id: str | None = None
    """The holder's app-scoped id (never the resident's real id)."""
    health_color: str | None = None
    """green / yellow / red for Ankang codes."""
    pass_id: str | None = None
    """For this app's own passes."""
    data: dict[str, Any] = {}
    """For this app's own passes: the data given to `issue_pass`."""


class _Facade:
    """Holds the raw proxy of one declared capability and sends typed requests through it."""

    __slots__ = ("_proxy",)

    def __init__(self, proxy: Any) -> None:
        self._proxy = proxy

    def _send(self, operation: str, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        send: Callable[..., Awaitable[Any]] = getattr(self._proxy, operation)
        return send(*args, **kwargs)

    if not TYPE_CHECKING:  # untyped access to operations newer than this SDK; hidden from type checkers

        def __getattr__(self, operation: str) -> Callable[..., Awaitable[Any]]:
            if operation.startswith("_"):
                raise AttributeError(operation)
            return getattr(self._proxy, operation)


class Storage(_Facade):
    """Per-app namespaced documents with versions, compare-and-set, bounded counters and quotas.

    Keys are 1-200 characters without control characters; values are JSON-able and at most 64 KiB encoded.
    Writes over the app's storage quota raise QuotaExceeded.
    """

    __slots__ = ()

    async def get(self, key: str) -> Any:
        """The value stored under `key`, or None when there is none."""
        return await self._send("get", key=key)

    async def get_document(self, key: str) -> Document | None:
        """The value with its version (for a later compare-and-set `put`), or None."""
        reply = await self._send("get_document", key=key)
        return None if reply is None else msgspec.convert(reply, Document)

    async def put(self, key: str, value: Any, *, expected_version: int | None = None) -> int:
        """Store `value`; returns the new version. `expected_version`: None writes unconditionally, 0 only
        creates (the key must not exist), n only replaces version n. Raises VersionConflict, QuotaExceeded,
        InvalidArgument."""
        return int(await self._send("put", key=key, value=value, expected_version=expected_version))

    async def delete(self, key: str, *, expected_version: int | None = None) -> bool:
        """Remove `key`; True if it existed. Raises VersionConflict when `expected_version` is stale."""
        return bool(await self._send("delete", key=key, expected_version=expected_version))

    async def list(self, prefix: str = "", cursor: str | None = None, limit: int = 50) -> Page:
        """Documents whose key starts with `prefix`, in key order, `limit` (1-100) per page."""
        reply = await self._send("list", prefix=prefix, cursor=cursor, limit=limit)
        return msgspec.convert(reply, Page)

    async def counter_add(
        self, name: str, delta: int = 1, *, min: int | None = None, max: int | None = None
    ) -> int:
        """Atomically add `delta` (may be negative) to counter `name` (starting at 0); returns the new value.
        If the result would leave [min, max] the counter is unchanged and CounterOutOfRange is raised: slot
        capacity is `counter_add("slots:2026-01-05", 1, max=40)`."""
        return int(await self._send("counter_add", name=name, delta=delta, min=min, max=max))

    async def counter_get(self, name: str) -> int:
        """The counter's current value (0 if never touched)."""
        return int(await self._send("counter_get", name=name))


class User(_Facade):
    """Who is calling: the app-scoped pseudonymous id, and more only through consented scopes."""

    __slots__ = ()

    async def id(self) -> str | None:
        """The caller's app-scoped id (the same resident gets a different id in every app), None if anonymous."""
        reply = await self._send("id")
        return None if reply is None else str(reply)

    async def scope(self, name: str) -> str:
        """The value of a consented scope (`birth_date` "1950-03-02", `real_name_masked` "王*",
        `phone_masked` "138****0000", `health_color` "green"). Raises ConsentDenied when the resident has
        not granted it (or is anonymous), CapabilityDenied when the manifest does not list it in [scopes]."""
        return str(await self._send("scope", name=name))


class Notify(_Facade):
    """The resident inbox (subscribe-message style)."""

    __slots__ = ()

    async def send(self, title: str, body: str, *, user_id: str | None = None) -> str:
        """Put a message (title <= 40, body <= 500 characters) in the inbox of `user_id` (an app-scoped id;
        default: the caller); returns the message id. Raises QuotaExceeded, InvalidArgument."""
        return str(await self._send("send", title=title, body=body, user_id=user_id))


class Payments(_Facade):
    """One-card charges: idempotent by key, confirmed by the resident."""

    __slots__ = ()

    async def charge(self, amount_fen: int, reason: str, idempotency_key: str) -> Payment:
        """Charge the caller's one-card `amount_fen` (1-1_000_000) fen for `reason` (shown to the resident).
        The same `idempotency_key` returns the same Payment and never charges twice (a different amount with
        a used key raises InvalidArgument). Raises PaymentFailed, PaymentDeclined, ConsentDenied (anonymous)."""
        reply = await self._send(
            "charge", amount_fen=amount_fen, reason=reason, idempotency_key=idempotency_key
        )
        return msgspec.convert(reply, Payment)

    async def status(self, payment_id: str) -> Payment:
        """The payment's current state (e.g. after the resident confirmed it)."""
        return msgspec.convert(await self._send("status", payment_id=payment_id), Payment)


class Credentials(_Facade):
    """Verify a scanned code; issue app passes (tickets, door plates) as signed QR payloads."""

    __slots__ = ()

    async def verify(self, payload: str) -> Verification:
        """Check a QR payload (Ankang code, ride code or one of this app's passes) against the trust list,
        validity and revocation. Never raises for a bad code: look at `valid` and `reason`."""
        return msgspec.convert(await self._send("verify", payload=payload), Verification)

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
        reply = await self._send("issue_pass", kind=kind, data=data, valid_until=valid_until, user_id=user_id)
        return msgspec.convert(reply, AppPass)

    async def revoke_pass(self, pass_id: str) -> bool:
        """Revoke one of this app's passes; True if it was valid until now."""
        return bool(await self._send("revoke_pass", pass_id=pass_id))


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
