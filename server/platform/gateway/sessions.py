"""App-scoped sessions: what a mini-app's page (`ui/`, in the shell's sandboxed iframe) calls its gateway with.

The shell trades the resident's access token for one of these (`POST /v1/me/miniapps/{app_id}/session`) and hands
it to the page over postMessage; the resident's own token never reaches an app page. The token is
`yas_` + an EdDSA JWT signed with the access-token key:

    aud  "<base url>/miniapps/<app_id>"  so the access-token check of every other route refuses it (wrong
                                          audience), and another app's gateway refuses it too
    sub  the app-scoped user id           what the app already knows the resident by; never the account id
    ses  the resident's session id, AES-GCM encrypted with a fresh nonce: logout ends the app sessions it
         begot, and two apps comparing their tokens find nothing in common
    iat, exp (short: APP_SESSION_TTL_S), jti

The page can read the claims (it holds the token), so they carry nothing the app may not know.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from cryptography.exceptions import InvalidTag
from yima_sdk.errors import YimaError

from server.auth.guards import APP_SESSION_PREFIX
from server.auth.tokens import ACCESS_PURPOSE
from server.core import Core
from server.errors import Unauthorized
from server.platform.runtime.capabilities import PlatformCapabilities

APP_SESSION_TTL_S = 600
_ALGORITHMS = ["EdDSA"]
_REQUIRED = ["exp", "iat", "sub", "aud", "iss", "ses"]
_SESSION_FIELD = "app-session-sid"  # bound as associated data: this ciphertext means nothing elsewhere


class AppSessionInvalid(Unauthorized):
    code, title = "miniapp.session_invalid", "This app session is not valid for this mini-app"


class AppSessionExpired(Unauthorized):
    code, title = "miniapp.session_expired", "This app session has expired; the shell opens a new one"


@dataclass(frozen=True)
class IssuedSession:
    token: str
    expires_in: int
    user_id: str


class AppSessions:
    def __init__(
        self, core: Core, caps: PlatformCapabilities, *, ttl_s: int = APP_SESSION_TTL_S, leeway_s: int = 5
    ) -> None:
        self.core = core
        self.caps = caps
        self.ttl_s = ttl_s
        self.clock: Callable[[], float] = time.time
        self._leeway = leeway_s
        self._issuer = core.settings.jwt_issuer
        self._base = core.settings.base_url

    def audience(self, app_id: str) -> str:
        return f"{self._base}/miniapps/{app_id}"

    async def issue(self, account_id: int, session_id: str, app_id: str) -> IssuedSession:
        """A session for `app_id` on behalf of the resident's session (the caller checked the app is theirs)."""
        user_id = await self.caps.seen(app_id, account_id)
        key = await self.core.keys.active(ACCESS_PURPOSE)
        now = int(self.clock())
        sealed = self.core.cipher.encrypt(_SESSION_FIELD, session_id)
        claims = {
            "iss": self._issuer,
            "aud": self.audience(app_id),
            "sub": user_id,
            "iat": now,
            "exp": now + self.ttl_s,
            "jti": uuid.uuid4().hex,
            "ses": base64.urlsafe_b64encode(sealed).decode().rstrip("="),
        }
        token = jwt.encode(claims, key.private_key, algorithm="EdDSA", headers={"kid": key.kid})
        return IssuedSession(APP_SESSION_PREFIX + token, self.ttl_s, user_id)

    async def verify(self, token: str, app_id: str) -> int:
        """The account behind a valid, unexpired session for exactly `app_id` whose resident session is still on;
        AppSessionInvalid or AppSessionExpired otherwise."""
        if not token.startswith(APP_SESSION_PREFIX):
            raise AppSessionInvalid()
        raw = token[len(APP_SESSION_PREFIX) :]
        try:
            kid = jwt.get_unverified_header(raw).get("kid")
        except jwt.PyJWTError:
            raise AppSessionInvalid() from None
        key = await self.core.keys.find(ACCESS_PURPOSE, kid) if isinstance(kid, str) else None
        if key is None:
            raise AppSessionInvalid()
        try:
            claims = jwt.decode(
                raw,
                key.public_key,
                algorithms=_ALGORITHMS,
                audience=self.audience(app_id),
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": _REQUIRED},
            )
            sealed = base64.urlsafe_b64decode(claims["ses"] + "=" * (-len(claims["ses"]) % 4))
            session_id = self.core.cipher.decrypt(_SESSION_FIELD, sealed)
        except jwt.ExpiredSignatureError:
            raise AppSessionExpired() from None
        except (jwt.PyJWTError, InvalidTag, ValueError, TypeError, binascii.Error):
            raise AppSessionInvalid() from None
        if await self.core.sessions.is_ended(session_id):
            raise Unauthorized("This session has ended; log in again", code="auth.session_ended")
        try:
            return await self.caps.account(app_id, str(claims["sub"]), "call the app")
        except YimaError:  # signed by us for an id this app never had: refuse, never guess
            raise AppSessionInvalid() from None
