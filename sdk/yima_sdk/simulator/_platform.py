"""The simulated platform: an in-memory capability provider implementing every capability operation of
docs/sdk.md, with fixture residents and the switches a developer flips to see the unhappy paths."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from yima_sdk.errors import (
    CapabilityDenied,
    ConsentDenied,
    CounterOutOfRange,
    InvalidArgument,
    PaymentDeclined,
    PaymentFailed,
    QuotaExceeded,
    VersionConflict,
)
from yima_sdk.manifest import SCOPES, Manifest

__all__ = ["FIXTURE_USERS", "CallInfo", "FixtureUser", "SimulatedPlatform", "Switches"]

MAX_KEY = 200
MAX_VALUE_BYTES = 64 * 1024
MAX_TITLE = 40
MAX_BODY = 500
MAX_CHARGE_FEN = 1_000_000
PASS_PREFIX = "YSP1."  # noqa: S105  (a payload prefix, not a secret)
ANKANG_PREFIX = "YSA1."
"""Simulated payload prefixes. They are NOT the production formats: the platform signs passes and codes with
its Ed25519 issuer keys; the simulator signs with an HMAC key of its own so nothing here needs real keys."""


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

    def scope(self, scope: str) -> str:
        return str(getattr(self, scope))


FIXTURE_USERS: dict[str, FixtureUser] = {
    user.name: user
    for user in (
        FixtureUser("alice", "1990-05-14", "李*", "139****0001", "green"),
        FixtureUser("grandpa", "1948-02-01", "王*", "138****0002", "green", balance_fen=5_000),
        FixtureUser("carol", "2001-11-30", "陈*", "137****0003", "yellow", balance_fen=0),
    )
}
"""`alice` (adult, green), `grandpa` (born 1948: concessions), `carol` (yellow code, empty one-card)."""


@dataclass
class Switches:
    """What to break. Flip them in tests (`miniapp.switches.consent_denied = True`) or with `yima-sdk dev`
    flags; every capability request reads them afresh."""

    consent_denied: bool = False
    """Every resident refuses every scope: `user.scope` raises ConsentDenied."""
    quota_exceeded: bool = False
    """Every write (storage put/delete/counter_add, notify.send, credentials.issue_pass) raises QuotaExceeded."""
    payment_failure: bool = False
    """The one-card refuses every charge: `payments.charge` raises PaymentFailed."""
    payment_confirmation: Literal["auto", "manual", "decline"] = "auto"
    """How the simulated resident answers the confirmation sheet: confirm at once, leave it pending until
    `confirm_payment(id)`, or decline (PaymentDeclined)."""


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
        self.passes: dict[str, dict[str, Any]] = {}
        self._idempotency: dict[tuple[str, str], str] = {}
        self._ids = itertools.count(1)
        self._key = os.urandom(32)
        self._by_app_id = {self.user_id(name): name for name in self.users}
        self.balances = {name: user.balance_fen for name, user in self.users.items()}
        """One-card balances in fen; a confirmed charge over the balance ends `failed`."""

    # ---- fixture residents --------------------------------------------------------------------------

    def user_id(self, name: str) -> str:
        """The app-scoped id of fixture resident `name` in this app (stable for an app id)."""
        if name not in self.users:
            raise KeyError(f"no fixture user {name!r}; known: {', '.join(sorted(self.users))}")
        digest = hashlib.sha256(f"{self.manifest.id}\0{name}".encode()).hexdigest()
        return f"u_{digest[:20]}"

    def resident(self, user_id: str | None) -> FixtureUser | None:
        name = self._by_app_id.get(user_id or "")
        return None if name is None else self.users[name]

    def ankang_code(self, name: str, *, valid_s: int = 60) -> str:
        """A simulated Ankang code payload for fixture resident `name`, to feed `credentials.verify`."""
        user = self.users[name]
        claims = {"u": name, "c": user.health_color, "exp": int(self.clock()) + valid_s}
        return ANKANG_PREFIX + self._sign(claims)

    def confirm_payment(self, payment_id: str, *, accept: bool = True) -> dict[str, Any]:
        """The simulated resident answers the confirmation sheet of a pending payment."""
        payment = self.payments[payment_id]
        if payment["status"] == "pending_confirmation":
            if accept:
                self._settle(payment)
            else:
                payment["status"] = "declined"
        return dict(payment)

    # ---- the provider ---------------------------------------------------------------------------------

    async def handle(
        self, call: CallInfo, capability: str, operation: str, args: list[Any], kwargs: dict[str, Any]
    ) -> Any:
        method = getattr(self, f"_{capability}_{operation}", None)
        if method is None or capability not in _SERVED:
            raise CapabilityDenied(f"{capability}.{operation} is not a capability operation of this platform")
        if args:
            raise InvalidArgument(f"{capability}.{operation} takes keyword arguments only")
        try:
            return method(call, **kwargs)
        except TypeError as exc:
            raise InvalidArgument(f"{capability}.{operation}: {exc}") from None

    # storage

    def _storage_get(self, call: CallInfo, key: str) -> Any:
        doc = self.space.docs.get(_check_key(key))
        return None if doc is None else doc.value

    def _storage_get_document(self, call: CallInfo, key: str) -> Any:
        doc = self.space.docs.get(_check_key(key))
        return None if doc is None else {"key": key, "value": doc.value, "version": doc.version}

    def _storage_put(self, call: CallInfo, key: str, value: Any, expected_version: int | None = None) -> int:
        _check_key(key)
        self._write_allowed()
        try:
            size = len(json.dumps(value, ensure_ascii=False).encode())
        except (TypeError, ValueError):
            raise InvalidArgument("storage values must be JSON-able") from None
        if size > MAX_VALUE_BYTES:
            raise InvalidArgument(f"value of {size} bytes is over the {MAX_VALUE_BYTES}-byte limit")
        doc = self.space.docs.get(key)
        _check_version(key, doc, expected_version)
        if doc is None and len(self.space.docs) >= self.storage_quota:
            raise QuotaExceeded(f"storage holds at most {self.storage_quota} keys per app")
        version = 1 if doc is None else doc.version + 1
        self.space.docs[key] = _Doc(json.loads(json.dumps(value)), version)
        return version

    def _storage_delete(self, call: CallInfo, key: str, expected_version: int | None = None) -> bool:
        _check_key(key)
        self._write_allowed()
        doc = self.space.docs.get(key)
        _check_version(key, doc, expected_version)
        return self.space.docs.pop(key, None) is not None

    def _storage_list(
        self, call: CallInfo, prefix: str = "", cursor: str | None = None, limit: int = 50
    ) -> dict[str, Any]:
        if not isinstance(limit, int) or not 1 <= limit <= 100:
            raise InvalidArgument("limit must be 1-100")
        keys = sorted(k for k in self.space.docs if k.startswith(prefix) and (cursor is None or k > cursor))
        page = keys[:limit]
        items = [
            {"key": k, "value": self.space.docs[k].value, "version": self.space.docs[k].version} for k in page
        ]
        return {"items": items, "cursor": page[-1] if len(keys) > limit else None}

    def _storage_counter_add(
        self, call: CallInfo, name: str, delta: int = 1, min: int | None = None, max: int | None = None
    ) -> int:
        _check_key(name)
        self._write_allowed()
        if not isinstance(delta, int):
            raise InvalidArgument("delta must be an integer")
        value = self.space.counters.get(name, 0) + delta
        if (min is not None and value < min) or (max is not None and value > max):
            raise CounterOutOfRange(f"counter {name!r} would become {value}, outside [{min}, {max}]")
        self.space.counters[name] = value
        return value

    def _storage_counter_get(self, call: CallInfo, name: str) -> int:
        return self.space.counters.get(_check_key(name), 0)

    # user

    def _user_id(self, call: CallInfo) -> str | None:
        return call.user_id

    def _user_scope(self, call: CallInfo, name: str) -> str:
        if name not in SCOPES:
            raise InvalidArgument(f"unknown scope {name!r}; known scopes: {', '.join(sorted(SCOPES))}")
        if name not in self.manifest.scopes:
            raise CapabilityDenied(f"scope {name!r} is not declared under [scopes] in miniapp.toml")
        resident = self.resident(call.user_id)
        if resident is None:
            raise ConsentDenied(f"an anonymous caller has not consented to {name!r}")
        if self.switches.consent_denied:
            raise ConsentDenied(f"the resident has not granted the scope {name!r}")
        return resident.scope(name)

    # notify

    def _notify_send(self, call: CallInfo, title: str, body: str, user_id: str | None = None) -> str:
        target = user_id or call.user_id
        if target is None:
            raise InvalidArgument(
                "notify.send needs a resident: the call is anonymous and no user_id was given"
            )
        if self.resident(target) is None:
            raise InvalidArgument(f"no resident with app-scoped id {target!r} in this app")
        if not isinstance(title, str) or not 1 <= len(title) <= MAX_TITLE:
            raise InvalidArgument(f"title must be 1-{MAX_TITLE} characters")
        if not isinstance(body, str) or len(body) > MAX_BODY:
            raise InvalidArgument(f"body must be at most {MAX_BODY} characters")
        self._write_allowed()
        message_id = f"msg_{next(self._ids)}"
        self.inbox.append({"id": message_id, "user_id": target, "title": title, "body": body})
        return message_id

    # payments

    def _payments_charge(
        self, call: CallInfo, amount_fen: int, reason: str, idempotency_key: str
    ) -> dict[str, Any]:
        resident = self.resident(call.user_id)
        if resident is None:
            raise ConsentDenied("an anonymous caller cannot be charged")
        if not isinstance(amount_fen, int) or not 1 <= amount_fen <= MAX_CHARGE_FEN:
            raise InvalidArgument(f"amount_fen must be 1-{MAX_CHARGE_FEN}")
        if not isinstance(idempotency_key, str) or not 1 <= len(idempotency_key) <= 100:
            raise InvalidArgument("idempotency_key must be 1-100 characters")
        if not isinstance(reason, str) or not 1 <= len(reason) <= 100:
            raise InvalidArgument("reason must be 1-100 characters")
        known = self._idempotency.get((str(call.user_id), idempotency_key))
        if known is not None:
            payment = self.payments[known]
            if payment["amount_fen"] != amount_fen:
                raise InvalidArgument(f"idempotency_key {idempotency_key!r} was used for another amount")
            return dict(payment)
        if self.switches.payment_failure:
            raise PaymentFailed("the one-card refused the charge (simulated payment failure)")
        if self.switches.payment_confirmation == "decline":
            raise PaymentDeclined("the resident declined to confirm the charge")
        if self.balances[resident.name] < amount_fen:
            raise PaymentFailed(f"the one-card balance is under {amount_fen} fen")
        payment = {
            "id": f"pay_{next(self._ids)}",
            "status": "pending_confirmation",
            "amount_fen": amount_fen,
            "reason": reason,
            "idempotency_key": idempotency_key,
            "user_id": call.user_id,
        }
        self.payments[payment["id"]] = payment
        self._idempotency[(str(call.user_id), idempotency_key)] = payment["id"]
        if self.switches.payment_confirmation == "auto":
            self._settle(payment)
        return dict(payment)

    def _payments_status(self, call: CallInfo, payment_id: str) -> dict[str, Any]:
        payment = self.payments.get(payment_id)
        if payment is None:
            raise InvalidArgument(f"no payment {payment_id!r} for this app")
        return dict(payment)

    def _settle(self, payment: dict[str, Any]) -> None:
        resident = self.resident(payment["user_id"])
        assert resident is not None
        balance = self.balances[resident.name]
        if balance < payment["amount_fen"]:
            payment["status"] = "failed"
            return
        self.balances[resident.name] = balance - payment["amount_fen"]
        payment["status"] = "succeeded"

    def balance(self, name: str) -> int:
        """Fixture resident `name`'s one-card balance now, in fen."""
        return self.balances[name]

    # credentials

    def _credentials_issue_pass(
        self, call: CallInfo, kind: str, data: dict[str, Any], valid_until: int, user_id: str | None = None
    ) -> dict[str, Any]:
        if not isinstance(kind, str) or not 1 <= len(kind) <= 32:
            raise InvalidArgument("kind must be 1-32 characters")
        if not isinstance(data, dict) or len(json.dumps(data)) > 512:
            raise InvalidArgument("data must be a JSON object of at most 512 bytes (it goes into a QR code)")
        if not isinstance(valid_until, int) or valid_until <= self.clock():
            raise InvalidArgument("valid_until must be a future Unix time in seconds")
        self._write_allowed()
        pass_id = f"pass_{next(self._ids)}"
        holder = user_id or call.user_id
        claims = {"p": pass_id, "a": self.manifest.id, "k": kind, "s": holder, "d": data, "exp": valid_until}
        record = {
            "id": pass_id,
            "kind": kind,
            "payload": PASS_PREFIX + self._sign(claims),
            "valid_until": valid_until,
        }
        self.passes[pass_id] = {**record, "revoked": False}
        return record

    def _credentials_revoke_pass(self, call: CallInfo, pass_id: str) -> bool:
        record = self.passes.get(pass_id)
        if record is None or record["revoked"]:
            return False
        record["revoked"] = True
        return True

    def _credentials_verify(self, call: CallInfo, payload: str) -> dict[str, Any]:
        if not isinstance(payload, str):
            return {"valid": False, "reason": "credential.malformed"}
        for prefix in (PASS_PREFIX, ANKANG_PREFIX):
            if payload.startswith(prefix):
                claims = self._unsign(payload[len(prefix) :])
                break
        else:
            return {"valid": False, "reason": "credential.malformed"}
        if claims is None:
            return {"valid": False, "reason": "credential.bad_signature"}
        if claims["exp"] < self.clock():
            return {"valid": False, "reason": "credential.expired"}
        if prefix == ANKANG_PREFIX:
            return {
                "valid": True,
                "kind": "ankang_code",
                "user_id": self.user_id(claims["u"]),
                "health_color": claims["c"],
            }
        if claims["a"] != self.manifest.id:
            return {"valid": False, "reason": "credential.other_app"}
        if self.passes.get(claims["p"], {}).get("revoked"):
            return {"valid": False, "reason": "credential.revoked"}
        return {
            "valid": True,
            "kind": "app_pass",
            "user_id": claims["s"],
            "pass_id": claims["p"],
            "data": claims["d"],
        }

    # ---- helpers --------------------------------------------------------------------------------------

    def _write_allowed(self) -> None:
        if self.switches.quota_exceeded:
            raise QuotaExceeded("the app's quota is used up (simulated quota exceeded)")

    def _sign(self, claims: dict[str, Any]) -> str:
        body = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=")
        tag = base64.urlsafe_b64encode(hmac.digest(self._key, body, "sha256")[:16]).rstrip(b"=")
        return f"{body.decode()}.{tag.decode()}"

    def _unsign(self, text: str) -> dict[str, Any] | None:
        body, _, tag = text.partition(".")
        expected = base64.urlsafe_b64encode(hmac.digest(self._key, body.encode(), "sha256")[:16]).rstrip(b"=")
        if not hmac.compare_digest(expected, tag.encode()):
            return None
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        return claims


_SERVED = frozenset({"storage", "user", "notify", "payments", "credentials"})


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY or any(ord(c) < 32 for c in key):
        raise InvalidArgument(f"keys are strings of 1-{MAX_KEY} characters without control characters")
    return key


def _check_version(key: str, doc: _Doc | None, expected: int | None) -> None:
    if expected is None:
        return
    current = 0 if doc is None else doc.version
    if current != expected:
        raise VersionConflict(f"{key!r} is at version {current}, not {expected}")
