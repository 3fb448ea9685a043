"""Short-lived access tokens: EdDSA JWTs with an algorithm allow-list and every registered claim required."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import jwt

from server.errors import Unauthorized
from server.keys.service import KeyStore

ACCESS_PURPOSE = "access_token"
_ALGORITHMS = ["EdDSA"]  # never taken from the token itself
_REQUIRED = ["exp", "iat", "sub", "aud", "iss", "sid"]
_CACHE_MAX = 100_000


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    kind: str
    roles: frozenset[str]
    session_id: str
    expires_at: int


class AccessTokens:
    def __init__(
        self,
        keys: KeyStore,
        *,
        issuer: str,
        audience: str,
        ttl_s: int,
        clock: Callable[[], float] = time.time,
        leeway_s: int = 5,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self.ttl_s = ttl_s
        self._clock = clock
        self._leeway = leeway_s
        self._verified: dict[str, TokenClaims] = {}

    async def issue(self, *, subject: str, kind: str, roles: list[str], session_id: str) -> tuple[str, int]:
        key = await self._keys.active(ACCESS_PURPOSE)
        now = int(self._clock())
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "iat": now,
            "exp": now + self.ttl_s,
            "jti": uuid.uuid4().hex,
            "sid": session_id,
            "knd": kind,
            "roles": roles,
        }
        token = jwt.encode(claims, key.private_key, algorithm="EdDSA", headers={"kid": key.kid})
        return token, self.ttl_s

    async def verify(self, token: str) -> TokenClaims:
        """Claims of a valid token. A token verified before is answered from memory until it expires: clients
        reuse one token for many requests, and the signature covers exactly these bytes."""
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires_at > self._clock() - self._leeway:
                return cached
            del self._verified[token]
        claims = await self._verify(token)
        if len(self._verified) >= _CACHE_MAX:
            now = self._clock()
            for stale in [t for t, c in self._verified.items() if c.expires_at <= now]:
                del self._verified[stale]
            if len(self._verified) >= _CACHE_MAX:
                self._verified.clear()
        self._verified[token] = claims
        return claims

    async def _verify(self, token: str) -> TokenClaims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("The access token is malformed", code="auth.token_invalid") from None
        kid = header.get("kid")
        if header.get("alg") not in _ALGORITHMS or not isinstance(kid, str):
            raise Unauthorized("The access token is not acceptable", code="auth.token_invalid")
        key = await self._keys.find(ACCESS_PURPOSE, kid)
        if key is None:
            raise Unauthorized("The access token's key is unknown", code="auth.token_invalid")
        try:
            claims = jwt.decode(
                token,
                key.public_key,
                algorithms=_ALGORITHMS,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": _REQUIRED},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The access token has expired", code="auth.token_expired") from None
        except jwt.PyJWTError:
            raise Unauthorized("The access token is not valid", code="auth.token_invalid") from None
        if claims["iat"] > self._clock() + self._leeway:
            raise Unauthorized("The access token is not valid yet", code="auth.token_invalid")
        return TokenClaims(
            subject=str(claims["sub"]),
            kind=str(claims.get("knd", "account")),
            roles=frozenset(claims.get("roles") or ()),
            session_id=str(claims["sid"]),
            expires_at=int(claims["exp"]),
        )
