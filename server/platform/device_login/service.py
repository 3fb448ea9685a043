"""Rules of the developer device login (RFC 8628 style) behind `yima-sdk login`.

The CLI asks for a sign-in and gets a secret device code and a short user code; the developer, signed in by OTP
on any device as an account with the developer role, confirms the user code; the CLI, polling with its device
code no faster than the interval, then receives a developer token once. Codes expire; a user code is confirmed
at most once and a device code yields at most one token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from server import audit
from server.db import Database
from server.platform.apps.service import Registry
from server.platform.device_login import errors as e
from server.platform.device_login import repository
from server.ratelimit import RateLimits

# RFC 8628 §6.1: consonants only (no vowels, so no words), no look-alikes; 20^8 codes, entered as XXXX-XXXX.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
SLOW_DOWN_STEP_S = 5  # RFC 8628 §3.5: each slow_down adds 5 s to the interval
CONFIRMS_PER_WINDOW = (
    10  # wrong guesses a signed-in developer may make before waiting (8 letters: no brute force)
)
STARTS_PER_HOUR = 30  # sign-ins one client address may start


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _hash(device_code: str) -> bytes:
    return hashlib.sha256(device_code.encode()).digest()


def normalize_user_code(text: str) -> str:
    """What the developer typed, as stored: upper case, without the dash or spaces."""
    return "".join(ch for ch in text.upper() if ch not in "- ")


def display_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


@dataclass(frozen=True)
class DeviceAuthorization:
    device_code: str
    user_code: str
    expires_in: int
    interval: int


@dataclass(frozen=True)
class IssuedToken:
    token_id: int
    token: str
    created_at: dt.datetime


class DeviceLogin:
    def __init__(
        self,
        db: Database,
        rate_limits: RateLimits,
        registry: Registry,
        *,
        ttl_s: int,
        interval_s: int,
        verification_uri: str,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        self._db = db
        self._rate_limits = rate_limits
        self._registry = registry
        self.ttl_s = ttl_s
        self.interval_s = interval_s
        self.verification_uri = verification_uri
        self.clock = clock

    async def start(self, client_address: str) -> DeviceAuthorization:
        await self._rate_limits.enforce(
            f"device:start:{client_address}",
            limit=STARTS_PER_HOUR,
            window_s=3600,
            what="sign-ins from this address",
        )
        device_code = secrets.token_urlsafe(32)
        now = self.clock()
        async with self._db.transaction() as conn:
            await repository.purge_expired(conn, now - dt.timedelta(days=1))
            while True:  # a clash with a pending code is one in billions; draw again
                user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
                created = await repository.insert(
                    conn,
                    device_code_hash=_hash(device_code),
                    user_code=user_code,
                    at=now,
                    expires_at=now + dt.timedelta(seconds=self.ttl_s),
                    interval_s=self.interval_s,
                )
                if created is not None:
                    break
        return DeviceAuthorization(device_code, display_user_code(user_code), self.ttl_s, self.interval_s)

    async def confirm(self, account_id: int, user_code: str) -> None:
        """The signed-in developer vouches for the CLI showing `user_code`; audited."""
        await self._rate_limits.enforce(
            f"device:confirm:{account_id}",
            limit=CONFIRMS_PER_WINDOW,
            window_s=600,
            what="sign-in confirmations",
        )
        now = self.clock()
        async with self._db.transaction() as conn:
            row = await repository.pending_by_user_code(conn, normalize_user_code(user_code))
            if row is None:
                raise e.UserCodeUnknown()
            if row["expires_at"] <= now:
                raise e.Expired()
            await repository.confirm(conn, row["id"], account_id, now)
            await audit.append(
                conn,
                actor=f"account:{account_id}",
                action="developer.device_login_confirmed",
                target=f"device_login:{row['id']}",
            )

    async def poll(self, device_code: str) -> IssuedToken:
        """The token once the user code is confirmed; otherwise the RFC 8628 answer as an error.

        The poll is stamped in its own transaction, committed before a pending or slow_down answer is raised,
        so the interval holds across polls."""
        now = self.clock()
        async with self._db.transaction() as conn:
            row = await repository.by_device_code(conn, _hash(device_code))
            if row is None:
                raise e.DeviceCodeInvalid()
            if row["token_id"] is not None:
                raise e.DeviceCodeUsed()
            if row["expires_at"] <= now:
                raise e.Expired()
            interval = row["interval_s"]
            polled_at = row["polled_at"]
            early = polled_at is not None and (now - polled_at).total_seconds() < interval
            if early:
                interval += SLOW_DOWN_STEP_S
            if early or row["account_id"] is None:
                await repository.polled(conn, row["id"], now, interval)
                pending: e.SlowDown | e.AuthorizationPending = (
                    e.SlowDown(retry_after_s=interval) if early else e.AuthorizationPending()
                )
            else:
                token_id, token, at = await self._registry.issue_token(
                    conn, row["account_id"], via=f"device_login:{row['id']}"
                )
                await repository.token_issued(conn, row["id"], token_id, now)
                return IssuedToken(token_id, token, at)
        raise pending
