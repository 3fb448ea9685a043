"""The terminal registry and the terminal token endpoint (OAuth client credentials with an RFC 7523 assertion)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from yima_sdk.codes import public_key_valid
from yima_sdk.terminal import sign_server_time

from server import audit
from server.core import Core
from server.keys.service import ROOT_PURPOSE
from server.terminals import errors, repository

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME_S = 300
_LEEWAY_S = 5
PUBLIC_TIME_PER_MINUTE = 30
ENROLMENTS_PER_MINUTE = 10
# No 0/O, 1/I/L: the code is read off a screen and typed on a terminal. 12 characters of 31: 59 bits.
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_CODE_LENGTH = 12


@dataclass(frozen=True, slots=True)
class TerminalInfo:
    id: str
    name: str
    kind: str
    scene: str
    enabled: bool
    session_epoch: int
    public_key: bytes
    created_at: datetime
    clock_offset_ms: int | None = None
    """The terminal's clock minus ours at its last time sync (None: never synced)."""
    clock_checked_at: datetime | None = None
    unit: str | None = None
    """The staff unit it serves (`clinic:guangde-people-1`), given to scan events; fixed at registration."""
    last_signed_in_at: datetime | None = None
    """When it last got a token: the operator's "last seen"."""


def _info(row: asyncpg.Record) -> TerminalInfo:
    return TerminalInfo(
        row["id"],
        row["name"],
        row["kind"],
        row["scene"],
        row["enabled"],
        row["session_epoch"],
        bytes(row["public_key"]),
        row["created_at"],
        row["clock_offset_ms"],
        row["clock_checked_at"],
        row["unit"],
        row["last_signed_in_at"],
    )


def decode_public_key(text: str) -> bytes:
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except ValueError:
        raise errors.TerminalKeyInvalid() from None
    if not public_key_valid(raw):  # a small-order key: OpenSSL would accept forged signatures under it
        raise errors.TerminalKeyInvalid()
    return raw


def _code_hash(code: str) -> bytes:
    """The stored form of an enrolment code: case, spaces and dashes as typed do not matter."""
    normal = code.upper().replace("-", "").replace(" ", "")
    return hashlib.sha256(b"yima-terminal-enrolment:" + normal.encode("ascii")).digest()


def session_id(terminal_id: str, epoch: int) -> str:
    return f"terminal:{terminal_id}:{epoch}"


class TerminalService:
    def __init__(self, core: Core, clock: Callable[[], float] = time.time) -> None:
        self._core = core
        self.clock = clock
        self.token_endpoint = core.settings.base_url.rstrip("/") + "/v1/terminal/token"
        self.pass_issuer = core.settings.issuer_code
        """The issuer whose `app_pass` keys sign our apps' passes (ours): a terminal told it at enrolment verifies
        passes with that issuer's keys only, whatever else the trust list holds (yima_sdk.codes.Verifier)."""
        self._cache: dict[str, TerminalInfo] = {}

    async def register(
        self,
        conn: asyncpg.Connection,
        *,
        actor: str,
        name: str,
        kind: str,
        scene: str,
        public_key: str,
        unit: str | None = None,
    ) -> TerminalInfo:
        raw = decode_public_key(public_key)
        terminal_id = "t-" + secrets.token_hex(8)
        row = await repository.insert_terminal(
            conn,
            id=terminal_id,
            name=name,
            kind=kind,
            scene=scene,
            public_key=raw,
            at=datetime.now(UTC),
            by=actor,
            unit=unit,
        )
        await audit.append(
            conn,
            actor=actor,
            action="terminal.registered",
            target=f"terminal:{terminal_id}",
            details={"kind": kind, "scene": scene, "unit": unit},
        )
        return _info(row)

    async def create_enrolment(
        self,
        conn: asyncpg.Connection,
        *,
        actor: str,
        name: str,
        kind: str,
        scene: str,
        valid_minutes: int,
        unit: str | None = None,
    ) -> tuple[str, datetime]:
        """A one-time code with which a terminal registers its own key as (name, kind, scene, unit); shown once."""
        raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))
        code = "-".join(raw[i : i + 4] for i in range(0, _CODE_LENGTH, 4))
        now = datetime.now(UTC)
        expires_at = now + timedelta(minutes=valid_minutes)
        await repository.insert_enrolment(
            conn,
            code_hash=_code_hash(code),
            name=name,
            kind=kind,
            scene=scene,
            at=now,
            by=actor,
            expires_at=expires_at,
            unit=unit,
        )
        await audit.append(
            conn,
            actor=actor,
            action="terminal.enrolment_created",
            target=f"scene:{scene}",
            details={"kind": kind, "unit": unit, "expires_at": expires_at.isoformat()},
        )
        return code, expires_at

    async def enrol(self, address: str, code: str, public_key: str) -> TerminalInfo:
        """Register `public_key` under the enrolment `code`: once per code, before it expires. The operator who
        made the code is the registration's actor (the code carries their decision)."""
        await self._core.rate_limits.enforce(
            f"terminal_enrol:addr:{address}",
            limit=ENROLMENTS_PER_MINUTE,
            window_s=60,
            what="enrolment attempts from this address",
        )
        decode_public_key(public_key)  # a bad key leaves the code unused
        code_hash = _code_hash(code)
        async with self._core.db.transaction() as conn:
            claimed = await repository.claim_enrolment(conn, code_hash, datetime.now(UTC))
            if claimed is None:
                raise errors.EnrolmentCodeInvalid()
            info = await self.register(
                conn,
                actor=claimed["created_by"],
                name=claimed["name"],
                kind=claimed["kind"],
                scene=claimed["scene"],
                public_key=public_key,
                unit=claimed["unit"],
            )
            await repository.set_enrolment_terminal(conn, code_hash, info.id)
        return info

    async def root_public_keys(self) -> dict[str, bytes]:
        """The trust-list roots a terminal pins (they sign the trust list and our time)."""
        return {k.kid: k.public_raw for k in await self._core.keys.keys(ROOT_PURPOSE) if k.active}

    async def list(self, conn: asyncpg.Connection) -> list[TerminalInfo]:
        return [_info(r) for r in await repository.list_terminals(conn)]

    async def disable(self, *, actor: str, terminal_id: str) -> TerminalInfo:
        async with self._core.db.transaction() as conn:
            epoch = await repository.disable_terminal(conn, terminal_id, datetime.now(UTC))
            if epoch is None:
                raise errors.TerminalNotFound()
            await audit.append(
                conn, actor=actor, action="terminal.disabled", target=f"terminal:{terminal_id}"
            )
            row = await repository.get_terminal(conn, terminal_id)
        # Every token of the old epoch dies now, on every worker: the guard checks this mark.
        await self._core.sessions.end(session_id(terminal_id, epoch), self._core.tokens.ttl_s + 60)
        self._cache.pop(terminal_id, None)
        return _info(row)

    async def enable(self, conn: asyncpg.Connection, *, actor: str, terminal_id: str) -> TerminalInfo:
        if not await repository.enable_terminal(conn, terminal_id):
            raise errors.TerminalNotFound()
        await audit.append(conn, actor=actor, action="terminal.enabled", target=f"terminal:{terminal_id}")
        self._cache.pop(terminal_id, None)
        row = await repository.get_terminal(conn, terminal_id)
        return _info(row)

    async def info(self, terminal_id: str) -> TerminalInfo:
        """Kind, scene and unit of a terminal, cached: they never change after registration."""
        cached = self._cache.get(terminal_id)
        if cached is not None:
            return cached
        async with self._core.db.connection() as conn:
            row = await repository.get_terminal(conn, terminal_id)
        if row is None:
            raise errors.TerminalNotFound()
        info = _info(row)
        self._cache[terminal_id] = info
        return info

    async def public_time(self, address: str, nonce: str) -> bytes:
        """Our signed time for anyone, before sign-in: a terminal whose clock is too far off to sign in corrects
        it here. The answer is the time, signed and bound to the caller's nonce; it reveals nothing else, and
        each address may ask PUBLIC_TIME_PER_MINUTE times a minute (signing costs a little CPU)."""
        await self._core.rate_limits.enforce(
            f"terminal_time:addr:{address}",
            limit=PUBLIC_TIME_PER_MINUTE,
            window_s=60,
            what="time requests from this address",
        )
        return await self._signed_now(nonce)

    async def server_time(self, terminal_id: str, nonce: str, terminal_time_ms: int | None) -> bytes:
        """Our time signed by the trust-list root for a terminal's sync (yima_sdk.terminal.verify_server_time),
        bound to its nonce; the terminal's own time, when it sends it, is kept for the operator's list."""
        received = self.clock()
        if terminal_time_ms is not None:
            async with self._core.db.connection() as conn:
                await repository.record_clock(
                    conn,
                    terminal_id,
                    terminal_time_ms - round(received * 1000),
                    datetime.fromtimestamp(received, UTC),
                )
        return await self._signed_now(nonce)

    async def _signed_now(self, nonce: str) -> bytes:
        """This moment, signed by the active trust-list root and bound to the terminal's nonce."""
        root = await self._core.keys.active(ROOT_PURPOSE)
        return sign_server_time(root.private_key, root.kid, round(self.clock() * 1000), nonce)

    async def issue_token(self, form: dict[str, str]) -> tuple[str, int]:
        """Check a client-credentials request with a JWT client assertion; answer a short-lived terminal token."""
        if form.get("grant_type") != "client_credentials":
            raise errors.UnsupportedGrant()
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise errors.InvalidClient(f"client_assertion_type must be {ASSERTION_TYPE}")
        assertion = form.get("client_assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            unverified: dict[str, Any] = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise errors.InvalidClient("The client assertion is not a JWT") from None
        if header.get("alg") != "EdDSA":
            raise errors.InvalidClient("The client assertion must be signed with EdDSA (Ed25519)")
        terminal_id = unverified.get("iss")
        if not isinstance(terminal_id, str) or len(terminal_id) > 64:
            raise errors.InvalidClient("iss must be the terminal id")
        if form.get("client_id") not in (None, terminal_id):
            raise errors.InvalidClient("client_id differs from the assertion's iss")
        async with self._core.db.connection() as conn:
            row = await repository.get_terminal(conn, terminal_id)
        if row is None:
            raise errors.InvalidClient("Unknown terminal")
        terminal = _info(row)
        if not public_key_valid(terminal.public_key):
            # A small-order key stored before registration refused them: OpenSSL, under PyJWT, would accept a
            # forged signature under it. The terminal must be registered again with a real key.
            raise errors.InvalidClient("This terminal's registered key is not a usable Ed25519 key")
        try:
            claims = jwt.decode(
                assertion,
                Ed25519PublicKey.from_public_bytes(terminal.public_key),
                algorithms=["EdDSA"],
                audience=self.token_endpoint,
                issuer=terminal.id,
                leeway=_LEEWAY_S,
                options={"require": ["iss", "sub", "aud", "exp", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise errors.AssertionTime(
                "The client assertion has expired; is the terminal's clock slow?"
            ) from None
        except jwt.PyJWTError as exc:
            raise errors.InvalidClient(f"The client assertion is not valid: {exc}") from None
        now = self.clock()
        if claims["sub"] != terminal.id:
            raise errors.InvalidClient("sub must equal iss (the terminal id)")
        if (
            not isinstance(claims["exp"], int | float)
            or claims["exp"] > now + MAX_ASSERTION_LIFETIME_S + _LEEWAY_S
        ):
            raise errors.AssertionTime("exp may be at most 5 minutes ahead; is the terminal's clock fast?")
        jti = claims["jti"]
        if not isinstance(jti, str) or not 8 <= len(jti) <= 200:
            raise errors.InvalidClient("jti must be a unique string of 8-200 characters")
        if not terminal.enabled:
            raise errors.InvalidClient("This terminal is disabled", code="terminal.disabled")
        # Single use: the assertion's id is remembered until the assertion could no longer pass the exp check.
        fresh = await self._core.cache.set_if_absent(
            f"terminal_jti:{terminal.id}:{hashlib.sha256(jti.encode()).hexdigest()}",
            b"1",
            max(1.0, float(claims["exp"]) - now + 2 * _LEEWAY_S),
        )
        if not fresh:
            raise errors.InvalidClient(
                "This client assertion was already used (jti)", code="terminal.assertion_replayed"
            )
        async with self._core.db.connection() as conn:
            await repository.record_sign_in(conn, terminal.id, datetime.fromtimestamp(now, UTC))
        return await self._core.tokens.issue(
            subject=terminal.id,
            kind="terminal",
            roles=[],
            session_id=session_id(terminal.id, terminal.session_epoch),
        )
