"""The server's CapabilityProvider: what a sandboxed mini-app reaches through `ctx.<capability>.<op>(...)`.

Operations follow the SDK's wire contract (yima_sdk.capabilities; arguments as keywords):

    user.id() -> app-scoped id | None              user.scope(name) -> str   (consent, else ConsentDenied)
    storage.*                                      see storage.py
    notify.send(title, body, user_id=None) -> message id         lands in GET /v1/me/inbox
    credentials.verify(payload) -> {"valid", "reason", "kind", "user_id", "health_color", "pass_id", "data"}
    credentials.issue_pass(kind, data, valid_until, user_id=None) -> {"id", "kind", "payload", "valid_until"}
    credentials.revoke_pass(pass_id) -> bool
    payments.charge(amount_fen, reason, idempotency_key) -> {"id", "status", "amount_fen", "reason",
                                                             "idempotency_key"}   status pending_confirmation
    payments.status(payment_id) -> the same

`log` is served by the sandbox host itself; capabilities missing from the manifest never reach this class.
App passes are `YP1.<base64url JSON claims>.<base64url Ed25519 signature>` under the platform key purpose
`miniapp-pass`: claims p (pass id), a (app id), k (kind), s (holder's app-scoped id), d (data), exp, kid.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from yima_sdk.errors import CapabilityDenied, CapabilityFailed, ConsentDenied, InvalidArgument, QuotaExceeded

from sandbox.capabilities import CallInfo
from server.core import Core
from server.platform import repository
from server.platform.ids import AppUserIds
from server.platform.runtime import Runtime
from server.platform.storage import AppStorage, arguments

PASS_PURPOSE = "miniapp-pass"  # noqa: S105 - a key purpose, not a secret
PASS_PREFIX = "YP1."  # noqa: S105
KNOWN_SCOPES = frozenset({"birth_date", "real_name_masked", "phone_masked", "health_color"})
NOTIFY_PER_DAY = 20
MAX_TITLE, MAX_BODY = 40, 500
MAX_CHARGE_FEN = 1_000_000

_OPS: dict[tuple[str, str], tuple[str, ...]] = {
    ("user", "id"): (),
    ("user", "scope"): ("name",),
    ("notify", "send"): ("title", "body", "user_id"),
    ("credentials", "verify"): ("payload",),
    ("credentials", "issue_pass"): ("kind", "data", "valid_until", "user_id"),
    ("credentials", "revoke_pass"): ("pass_id",),
    ("payments", "charge"): ("amount_fen", "reason", "idempotency_key"),
    ("payments", "status"): ("payment_id",),
}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


class PlatformCapabilities:
    def __init__(self, core: Core, runtime: Runtime, app_state: Any, storage: AppStorage) -> None:
        self.core = core
        self.runtime = runtime
        self.state = app_state
        self.storage = storage
        self.ids = AppUserIds(core.master_key)
        self._accounts: dict[tuple[str, str], int] = {}
        self.clock: Callable[[], float] = time.time

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
        """The resident's id in this app, stored so capabilities can find the resident behind it later."""
        user_id = self.ids.for_app(app_id, account_id)
        if self.remember(app_id, user_id, account_id):
            async with self.core.db.connection() as conn:
                await repository.remember_user(conn, app_id, user_id, account_id, _utc(self.clock()))
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
        if capability == "storage":
            return await self.storage.handle(call.app_id, operation, args, kwargs)
        names = _OPS.get((capability, operation))
        if names is None:
            raise CapabilityDenied(f"{capability}.{operation} is not a capability operation of this platform")
        a = arguments(f"{capability}.{operation}", names, args, kwargs)
        match capability, operation:
            case "user", "id":
                return call.user_id
            case "user", "scope":
                return await self._scope(call, a.get("name"))
            case "notify", "send":
                return await self._notify(call, a.get("title"), a.get("body"), a.get("user_id"))
            case "credentials", "verify":
                return await self._verify(call, a.get("payload"))
            case "credentials", "issue_pass":
                return await self._issue_pass(
                    call, a.get("kind"), a.get("data"), a.get("valid_until"), a.get("user_id")
                )
            case "credentials", "revoke_pass":
                return await self._revoke_pass(call, a.get("pass_id"))
            case "payments", "charge":
                return await self._charge(
                    call, a.get("amount_fen"), a.get("reason"), a.get("idempotency_key")
                )
            case _:
                return await self._payment_status(call, a.get("payment_id"))

    # ---- user -----------------------------------------------------------------------------------------

    async def _scope(self, call: CallInfo, name: Any) -> str:
        if name not in KNOWN_SCOPES:
            raise InvalidArgument(f"unknown scope {name!r}; known scopes: {', '.join(sorted(KNOWN_SCOPES))}")
        declared: dict[str, str] = {}
        live = self.runtime.apps.get(call.app_id)
        for v in live.versions() if live else []:
            if v.version == call.version:
                declared = v.scopes
        if name not in declared:
            raise CapabilityDenied(f"scope {name!r} is not declared under [scopes] in miniapp.toml")
        account_id = await self.account(call.app_id, call.user_id, f"consent to {name!r}")
        async with self.core.db.connection() as conn:
            if await repository.consent(conn, account_id, call.app_id, name) is not True:
                # no prompt from inside a call: the app says "denied"; the phone asks once, from the catalog
                raise ConsentDenied(f"the resident has not granted the scope {name!r}")
            profile = await self.state.identity.profile(conn, account_id)
        if name == "health_color":
            credentials = getattr(self.state, "credentials", None)
            if credentials is None:
                raise CapabilityFailed("health status is not available on this server")
            return str((await credentials.ankang.status(account_id)).colour)
        value = {
            "birth_date": profile.birth_date.isoformat() if profile.birth_date else None,
            "real_name_masked": profile.name_masked,
            "phone_masked": profile.phone_masked,
        }[name]
        if value is None:
            raise ConsentDenied(f"the resident has not verified a real name, so {name!r} is unknown")
        return str(value)

    # ---- notify ---------------------------------------------------------------------------------------

    async def _notify(self, call: CallInfo, title: Any, body: Any, user_id: Any) -> str:
        if not isinstance(title, str) or not 1 <= len(title) <= MAX_TITLE:
            raise InvalidArgument(f"title must be 1-{MAX_TITLE} characters")
        if not isinstance(body, str) or len(body) > MAX_BODY:
            raise InvalidArgument(f"body must be at most {MAX_BODY} characters")
        target = user_id if isinstance(user_id, str) else call.user_id
        account_id = await self.account(call.app_id, target, "receive messages")
        now = _utc(self.clock())
        async with self.core.db.transaction() as conn:
            if (
                await repository.messages_today(conn, call.app_id, account_id, now - dt.timedelta(days=1))
                >= NOTIFY_PER_DAY
            ):
                raise QuotaExceeded(f"at most {NOTIFY_PER_DAY} messages per resident per day from one app")
            message_id = await repository.insert_message(conn, account_id, call.app_id, title, body, now)
        return f"msg_{message_id}"

    # ---- credentials ----------------------------------------------------------------------------------

    async def _verify(self, call: CallInfo, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, str) or len(payload) > 4096:
            return {"valid": False, "reason": "credential.malformed"}
        if payload.startswith(PASS_PREFIX):
            return await self._check_pass(call, payload)
        credentials = getattr(self.state, "credentials", None)
        if credentials is None:
            raise CapabilityFailed("code verification is not available on this server")
        from yima_sdk.codes import CredentialError

        try:
            code = credentials.trust.verifier.verify(payload, self.clock())
        except CredentialError as exc:
            return {"valid": False, "reason": exc.code}
        answer: dict[str, Any] = {"valid": True, "kind": code.kind}
        subject = credentials.ankang.refs.open(code.subject_ref) if code.kind == "ankang_code" else None
        if subject is not None:
            # Only for a resident who uses this app: their id in it (never registered here, see known()), and
            # the colour only when they granted the `health_color` scope, since the colour is personal data.
            user_id = await self.known(call.app_id, subject.account_id)
            if user_id is not None:
                answer["user_id"] = user_id
                async with self.core.db.connection() as conn:
                    consented = await repository.consent(
                        conn, subject.account_id, call.app_id, "health_color"
                    )
                if consented is True:
                    answer["health_color"] = code.colour
        return answer

    async def _issue_pass(
        self, call: CallInfo, kind: Any, data: Any, valid_until: Any, user_id: Any
    ) -> dict[str, Any]:
        if not isinstance(kind, str) or not 1 <= len(kind) <= 32:
            raise InvalidArgument("kind must be 1-32 characters")
        now = self.clock()
        if (
            isinstance(valid_until, bool)
            or not isinstance(valid_until, int)
            or not now < valid_until <= now + 366 * 86400
        ):
            raise InvalidArgument("valid_until must be a future Unix time in seconds, at most a year ahead")
        try:
            encoded = msgspec.json.encode(data)
        except (TypeError, msgspec.EncodeError):
            encoded = b""
        if not isinstance(data, dict) or not encoded or len(encoded) > 512:
            raise InvalidArgument("data must be a JSON object of at most 512 bytes (it goes into a QR code)")
        holder = user_id if isinstance(user_id, str) else call.user_id
        key = await self.core.keys.active(PASS_PURPOSE)
        async with self.core.db.transaction() as conn:
            pass_id = await repository.insert_pass(
                conn, call.app_id, kind, holder, _utc(valid_until), _utc(now)
            )
        claims = {
            "p": pass_id,
            "a": call.app_id,
            "k": kind,
            "s": holder,
            "d": data,
            "exp": valid_until,
            "kid": key.kid,
        }
        signed = PASS_PREFIX + _b64(msgspec.json.encode(claims))
        payload = signed + "." + _b64(key.private_key.sign(signed.encode()))
        return {"id": f"pass_{pass_id}", "kind": kind, "payload": payload, "valid_until": valid_until}

    async def _check_pass(self, call: CallInfo, payload: str) -> dict[str, Any]:
        signed, _, sig = payload.rpartition(".")
        try:
            claims = json.loads(_unb64(signed[len(PASS_PREFIX) :]))
            key = await self.core.keys.find(PASS_PURPOSE, str(claims["kid"]))
            if key is None:
                return {"valid": False, "reason": "credential.unknown_key"}
            key.public_key.verify(_unb64(sig), signed.encode())
        except InvalidSignature:
            return {"valid": False, "reason": "credential.bad_signature"}
        except (ValueError, KeyError, TypeError):
            return {"valid": False, "reason": "credential.malformed"}
        if claims.get("a") != call.app_id:
            return {"valid": False, "reason": "credential.other_app"}
        if int(claims["exp"]) < self.clock():
            return {"valid": False, "reason": "credential.expired"}
        async with self.core.db.connection() as conn:
            if await repository.pass_revoked(conn, call.app_id, int(claims["p"])):
                return {"valid": False, "reason": "credential.revoked"}
        return {
            "valid": True,
            "kind": "app_pass",
            "user_id": claims["s"],
            "pass_id": f"pass_{claims['p']}",
            "data": claims["d"],
        }

    async def _revoke_pass(self, call: CallInfo, pass_id: Any) -> bool:
        number = _number(pass_id, "pass_")
        async with self.core.db.transaction() as conn:
            return await repository.revoke_pass(conn, call.app_id, number, _utc(self.clock()))

    # ---- payments -------------------------------------------------------------------------------------

    async def _charge(self, call: CallInfo, amount: Any, reason: Any, key: Any) -> dict[str, Any]:
        if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= MAX_CHARGE_FEN:
            raise InvalidArgument(f"amount_fen must be 1-{MAX_CHARGE_FEN}")
        if not isinstance(reason, str) or not 1 <= len(reason) <= 100:
            raise InvalidArgument("reason must be 1-100 characters (the resident sees it)")
        if not isinstance(key, str) or not 1 <= len(key) <= 100:
            raise InvalidArgument("idempotency_key must be 1-100 characters")
        account_id = await self.account(call.app_id, call.user_id, "be charged")
        if getattr(self.state, "onecard", None) is None:
            raise CapabilityFailed("one-card payments are not available on this server")
        async with self.core.db.transaction() as conn:
            row = await repository.insert_payment(
                conn,
                app_id=call.app_id,
                account_id=account_id,
                amount_fen=amount,
                reason=reason,
                idempotency_key=key,
                at=_utc(self.clock()),
            )
        if row["amount_fen"] != amount:
            raise InvalidArgument(f"idempotency_key {key!r} was used for another amount")
        return _payment(row)

    async def _payment_status(self, call: CallInfo, payment_id: Any) -> dict[str, Any]:
        number = _number(payment_id, "pay_")
        async with self.core.db.connection() as conn:
            row = await repository.payment(conn, number)
        if row is None or row["app_id"] != call.app_id:
            raise InvalidArgument(f"no payment {payment_id!r} for this app")
        return _payment(row)


def _number(value: Any, prefix: str) -> int:
    if isinstance(value, str) and value.startswith(prefix) and value[len(prefix) :].isdigit():
        return int(value[len(prefix) :])
    raise InvalidArgument(f"expected an id like {prefix}123")


def _payment(row: Any) -> dict[str, Any]:
    return {
        "id": f"pay_{row['id']}",
        "status": row["status"],
        "amount_fen": row["amount_fen"],
        "reason": row["reason"],
        "idempotency_key": row["idempotency_key"],
    }
