"""App-scoped pseudonymous user ids and phased-release buckets: pure functions of keys and ids."""

from __future__ import annotations

import base64
import hashlib
import hmac

_KNOWN_MAX = 200_000


class AppUserIds:
    """`u_` + 26 base32 characters (128 bits of HMAC): stable per (app, resident), unlinkable across apps
    without the key (DerivedKeys.app_user_id), and never the resident's account id."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        # A pure function of the key and its arguments, asked on every gateway call: an HMAC and base32 cost
        # ~5 us, a dict hit ~0.1 us. Nothing to invalidate; bounded, and emptied when full.
        self._known: dict[tuple[str, int], str] = {}

    def for_app(self, app_id: str, account_id: int) -> str:
        known = self._known.get((app_id, account_id))
        if known is not None:
            return known
        mac = hmac.new(self._key, f"{app_id}|{account_id}".encode(), hashlib.sha256).digest()[:16]
        user_id = "u_" + base64.b32encode(mac).decode().rstrip("=").lower()
        if len(self._known) >= _KNOWN_MAX:
            self._known.clear()
        self._known[(app_id, account_id)] = user_id
        return user_id

    def holder_for(self, app_id: str, holder: str) -> str:
        """A scanned partner credential's pseudonym in one app (ScanData.holder_ref): `h_` + 26 base32 characters
        of the same keyed HMAC, over the app and the credential (`<kind>:<issuer>:<serial or ref>`, see
        server.terminals.events.holder_of), apart from user ids by its label. Stable while the credential is,
        unlinkable across apps and to the serial or ref without the key."""
        mac = hmac.new(self._key, f"holder|{app_id}|{holder}".encode(), hashlib.sha256).digest()[:16]
        return "h_" + base64.b32encode(mac).decode().rstrip("=").lower()


def bucket(app_id: str, account_id: int) -> int:
    """The resident's phased-release bucket for one app, 0-99: HMAC(app_id, account_id) mod 100.

    Keyed by the app id so a resident is early for some apps and late for others, never always first."""
    mac = hmac.new(app_id.encode(), str(account_id).encode(), hashlib.sha256).digest()
    return int.from_bytes(mac[:8], "big") % 100
