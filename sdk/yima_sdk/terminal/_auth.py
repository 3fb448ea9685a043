"""A terminal's own identity at the token endpoint: RFC 7523 client assertions signed with its Ed25519 key.

The server (`POST /v1/terminal/token`, docs/scan.md) accepts an EdDSA JWT with iss = sub = the terminal id,
aud = the token endpoint's URL, a single-use `jti` and an `exp` at most 5 minutes ahead. The JWT is built here
with `cryptography` alone, so the SDK needs no JWT library for the one token it ever signs.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["ASSERTION_TYPE", "TerminalCredentials"]

ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_ASSERTION_LIFETIME_S: Final = 60
_HEADER: Final = b'{"alg":"EdDSA","typ":"JWT"}'


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TerminalCredentials:
    """The terminal id the operator registered and the private key whose public half was registered with it."""

    __slots__ = ("private_key", "terminal_id")

    def __init__(self, terminal_id: str, private_key: Ed25519PrivateKey) -> None:
        if not terminal_id or not terminal_id.isascii():
            raise ValueError("terminal_id is the ASCII id the registration answered")
        self.terminal_id = terminal_id
        self.private_key = private_key

    def assertion(self, audience: str, now: float) -> str:
        """A fresh client assertion for `audience` (the token endpoint's URL), valid for a minute from `now`.

        No `iat`: a terminal whose clock runs a little ahead would have it refused as issued in the future,
        while `exp` alone bounds the assertion's life (the server refuses one more than 5 minutes ahead).
        """
        claims = {
            "iss": self.terminal_id,
            "sub": self.terminal_id,
            "aud": audience,
            "exp": int(now) + _ASSERTION_LIFETIME_S,
            "jti": uuid.uuid4().hex,
        }
        signing_input = f"{_b64url(_HEADER)}.{_b64url(json.dumps(claims, separators=(',', ':')).encode())}"
        signature = self.private_key.sign(signing_input.encode())
        return f"{signing_input}.{_b64url(signature)}"
