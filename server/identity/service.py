"""Login by phone OTP, sessions with rotating refresh tokens, real-name identity and roles."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg

from server import audit
from server.auth.guards import Principal
from server.auth.live_roles import LiveRoles
from server.auth.roles import Role, granted_by
from server.auth.sessions import SessionRevocations
from server.auth.tokens import AccessTokens
from server.db import Database
from server.identity import errors, repository
from server.identity.id_number import (
    IdNumberError,
    mask_id_number,
    mask_name,
    mask_phone,
    parse_id_number,
)
from server.identity.sms import SmsError, SmsSender
from server.ratelimit import RateLimits
from server.security import FieldCipher
from server.settings import Settings

log = logging.getLogger("yima.identity")


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class Profile:
    account_id: int
    phone_masked: str
    roles: list[str]
    verified: bool
    name_masked: str | None
    id_number_masked: str | None
    birth_date: date | None
    sex: str | None


def _now() -> datetime:
    return datetime.now(UTC)


class GrantedRoles:
    """The roles identity has granted an account: the record the access guard reads (server.auth.live_roles)."""

    async def roles_of(self, conn: asyncpg.Connection, account_id: int) -> list[str]:
        return await repository.roles_of(conn, account_id)


class IdentityService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        rate_limits: RateLimits,
        cipher: FieldCipher,
        sms: SmsSender,
        tokens: AccessTokens,
        otp_key: bytes,
        sessions: SessionRevocations,
        roles: LiveRoles,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._s = settings
        self._sessions = sessions
        self._roles = roles
        self._db = db
        self._rate_limits = rate_limits
        self._cipher = cipher
        self._sms = sms
        self._tokens = tokens
        self._otp_key = otp_key
        self.clock = clock

    @property
    def sms(self) -> SmsSender:
        """The sender login codes go out through (the dev outbox reads the console sender's messages)."""
        return self._sms

    @property
    def otp_ttl_s(self) -> int:
        return self._s.otp_ttl_s

    async def masked_name(self, account_id: int) -> str | None:
        """The verified name, masked as terminals show it (`张*三`); None before the identity is verified."""
        async with self._db.connection() as conn:
            enc = await repository.name_enc(conn, account_id)
        return None if enc is None else mask_name(self._cipher.decrypt("name", enc))

    async def verified_id_index(self, conn: asyncpg.Connection, account_id: int) -> bytes | None:
        """The blind index of the account's ID number once its identity is verified; None before (or no account)."""
        return await repository.verified_id_index(conn, account_id)

    async def account_with_id_index(self, conn: asyncpg.Connection, id_index: bytes) -> int | None:
        """The account verified with the ID number of this blind index, if any."""
        row = await repository.account_by_id_number(conn, id_index)
        return None if row is None else int(row["id"])

    # -- OTP login -------------------------------------------------------------------------------------------

    def _otp_hash(self, phone_index: bytes, code: str) -> bytes:
        return hmac.new(self._otp_key, phone_index + code.encode(), hashlib.sha256).digest()

    async def request_otp(self, phone: str, client_address: str) -> None:
        """Send a code to any well-formed number; the answer never says whether an account exists."""
        phone_index = self._cipher.blind_index("phone", phone)
        await self._rate_limits.enforce(
            f"otp:addr:{client_address}",
            limit=self._s.otp_per_address_per_hour,
            window_s=3600,
            what="code requests from this address",
        )
        await self._rate_limits.enforce(
            f"otp:phone:{phone_index.hex()}",
            limit=self._s.otp_per_phone_per_hour,
            window_s=3600,
            what="code requests for this number",
        )
        code = f"{secrets.randbelow(1_000_000):06d}"
        now = self.clock()
        async with self._db.transaction() as conn:
            await repository.insert_otp(
                conn,
                phone_index,
                self._otp_hash(phone_index, code),
                now,
                now + timedelta(seconds=self._s.otp_ttl_s),
            )
        try:
            await self._sms.send(
                phone,
                "login_code",
                {"code": code, "minutes": str(self._s.otp_ttl_s // 60)},
                idempotency_key=f"otp:{phone_index.hex()[:16]}:{secrets.token_hex(8)}",
            )
        except SmsError:
            # Still 202: the resident simply asks again; an error here would reveal nothing useful but gateway state.
            log.warning("login code not delivered", extra={"reason": "sms_error"})

    async def exchange_otp(self, phone: str, code: str) -> TokenPair:
        phone_index = self._cipher.blind_index("phone", phone)
        now = self.clock()
        async with self._db.transaction() as conn:
            otp = await repository.live_otp_for_update(conn, phone_index, now)
            if otp is None:
                raise errors.OtpInvalid()
            if otp["attempts"] >= self._s.otp_max_attempts:
                raise errors.OtpLocked()
            if not hmac.compare_digest(bytes(otp["code_hash"]), self._otp_hash(phone_index, code)):
                tries = await repository.count_otp_attempt(conn, otp["id"])
                wrong: errors.OtpInvalid | errors.OtpLocked = (
                    errors.OtpLocked() if tries >= self._s.otp_max_attempts else errors.OtpInvalid()
                )
                # Commit the counted attempt, then refuse: the lock must survive the error.
                failed = wrong
            else:
                failed = None
                await repository.consume_otp(conn, otp["id"], now)
                account_id = await repository.upsert_account(
                    conn, phone_index, self._cipher.encrypt("phone", phone)
                )
                pair = await self._start_session(conn, account_id, now)
        if failed is not None:
            raise failed
        return pair

    async def _start_session(self, conn: asyncpg.Connection, account_id: int, now: datetime) -> TokenPair:
        session_id = await repository.create_session(conn, account_id, now)
        return await self._issue_pair(conn, account_id, session_id, now)

    async def _issue_pair(
        self, conn: asyncpg.Connection, account_id: int, session_id: uuid.UUID, now: datetime
    ) -> TokenPair:
        refresh = secrets.token_urlsafe(32)  # 256 random bits
        await repository.insert_refresh_token(
            conn, _hash_token(refresh), session_id, now, now + timedelta(seconds=self._s.refresh_token_ttl_s)
        )
        roles = await repository.roles_of(conn, account_id)
        access, expires_in = await self._tokens.issue(
            subject=str(account_id), kind="account", roles=roles, session_id=str(session_id)
        )
        return TokenPair(access, refresh, expires_in)

    async def refresh(self, refresh_token: str) -> TokenPair:
        token_hash = _hash_token(refresh_token)
        now = self.clock()
        reused_session: uuid.UUID | None = None
        async with self._db.transaction() as conn:
            row = await repository.refresh_token_for_update(conn, token_hash)
            if row is None or row["ended_at"] is not None or row["expires_at"] <= now:
                raise errors.RefreshInvalid()
            if row["spent_at"] is not None:
                # A spent token came back: someone holds a copy. End the whole family, then refuse.
                await repository.end_session(conn, row["session_id"], now, "refresh_reuse")
                reused_session = row["session_id"]
            else:
                await repository.spend_refresh_token(conn, token_hash, now)
                pair = await self._issue_pair(conn, row["account_id"], row["session_id"], now)
        if reused_session is not None:
            await self._revoke_access(reused_session)
            log.warning("refresh token reuse; session ended", extra={"session": str(reused_session)})
            raise errors.RefreshReused()
        return pair

    async def logout(self, session_id: str) -> None:
        sid = uuid.UUID(session_id)
        async with self._db.transaction() as conn:
            await repository.end_session(conn, sid, self.clock(), "logout")
        await self._revoke_access(sid)

    async def _revoke_access(self, session_id: uuid.UUID) -> None:
        # Access tokens are stateless; the guard checks this mark until the longest one could have expired.
        await self._sessions.end(str(session_id), self._tokens.ttl_s + 60)

    # -- profile and identity ------------------------------------------------------------------------------

    async def profile(self, conn: asyncpg.Connection, account_id: int) -> Profile:
        row = await repository.get_account(conn, account_id)
        if row is None:
            raise errors.AccountNotFound()
        phone = self._cipher.decrypt("phone", row["phone_enc"])
        id_masked = None
        if row["id_number_enc"] is not None:
            id_number = self._cipher.decrypt("id_number", row["id_number_enc"])
            id_masked = mask_id_number(id_number)
        return Profile(
            account_id=row["id"],
            phone_masked=mask_phone(phone),
            roles=list(row["roles"]),
            verified=row["verified_at"] is not None,
            name_masked=mask_name(self._cipher.decrypt("name", row["name_enc"])) if row["name_enc"] else None,
            id_number_masked=id_masked,
            birth_date=row["birth_date"],
            sex=row["sex"],
        )

    async def registered_in(self, conn: asyncpg.Connection, account_id: int, county: str) -> bool | None:
        """Whether the resident's real-name identity is registered in `county` (a 6-digit division code): the
        region its ID number was issued for (GB 11643, its first six digits). None without a real name. Only this
        yes or no leaves identity (the `registered_in:<county>` consent scope), never the number or a place."""
        row = await repository.get_account(conn, account_id)
        if row is None or row["id_number_enc"] is None:
            return None
        return bool(self._cipher.decrypt("id_number", row["id_number_enc"])[:6] == county)

    async def set_identity(
        self, conn: asyncpg.Connection, account_id: int, name: str, id_number: str
    ) -> Profile:
        name = name.strip()
        if not (2 <= len(name) <= 30) or any(ch.isdigit() or ch in "<>/\\{}" for ch in name):
            raise errors.NameInvalid("A name is 2 to 30 characters without digits or markup")
        try:
            parsed = parse_id_number(id_number, today=self.clock().date())
        except IdNumberError as exc:
            raise errors.IdNumberInvalid(f"The ID number is not valid: {exc}") from None
        index = self._cipher.blind_index("id_number", parsed.value)
        current = await repository.get_account(conn, account_id)
        if current is None:
            raise errors.AccountNotFound()
        if current["id_number_index"] is not None:
            if bytes(current["id_number_index"]) != index:
                raise errors.AlreadyVerified()
            return await self.profile(conn, account_id)  # same identity again: nothing to do
        owner = await repository.account_by_id_number(conn, index)
        if owner is not None and owner["id"] != account_id:
            raise errors.IdNumberTaken()
        try:
            await repository.set_identity(
                conn,
                account_id,
                name_enc=self._cipher.encrypt("name", name),
                id_number_enc=self._cipher.encrypt("id_number", parsed.value),
                id_number_index=index,
                birth_date=parsed.birth_date,
                sex=parsed.sex,
                now=self.clock(),
            )
        except asyncpg.UniqueViolationError:
            raise errors.IdNumberTaken() from None
        await audit.append(
            conn, actor=f"account:{account_id}", action="identity.verified", target=f"account:{account_id}"
        )
        return await self.profile(conn, account_id)

    # -- roles ---------------------------------------------------------------------------------------------

    async def grant_role(self, by: Principal | str, account_id: int, role: Role) -> bool:
        """Grant in its own transaction, then end the account's sessions and tell every worker (after the commit,
        so no worker reads the old roles back). `by` is the account asking, or the name of a server tool (the CLI,
        the demo seed), which the separation of duties does not bind."""
        return await self._change_role(by, account_id, role, grant=True)

    async def revoke_role(self, by: Principal | str, account_id: int, role: Role) -> bool:
        return await self._change_role(by, account_id, role, grant=False)

    async def _change_role(self, by: Principal | str, account_id: int, role: Role, *, grant: bool) -> bool:
        actor = by if isinstance(by, str) else f"account:{by.subject}"
        if not isinstance(by, str):
            if by.account_id == account_id:
                raise errors.OwnRole()
            if not by.roles & granted_by(role):
                raise errors.RoleNotYours(
                    f"Only {' or '.join(sorted(granted_by(role))) or 'the yima admin command'} may change {role.value}"
                )
        now = self.clock()
        async with self._db.transaction() as conn:
            if await repository.get_account(conn, account_id) is None:
                raise errors.AccountNotFound()
            change = repository.grant_role if grant else repository.revoke_role
            changed = await change(conn, account_id, role.value)
            ended: list[uuid.UUID] = []
            if changed:
                await audit.append(
                    conn,
                    actor=actor,
                    action="role.granted" if grant else "role.revoked",
                    target=f"account:{account_id}",
                    details={"role": role.value},
                )
                ended = await repository.end_sessions_of(conn, account_id, now, "roles_changed")
        if changed:
            await self._roles.changed(account_id)
            for session_id in ended:
                await self._revoke_access(session_id)
        return changed

    async def account_id_for_phone(self, conn: asyncpg.Connection, phone: str, *, create: bool) -> int | None:
        phone_index = self._cipher.blind_index("phone", phone)
        if create:
            return await repository.upsert_account(conn, phone_index, self._cipher.encrypt("phone", phone))
        row = await repository.account_by_phone(conn, phone_index)
        return None if row is None else int(row["id"])


def _hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
