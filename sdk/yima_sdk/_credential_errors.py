"""The one error a credential check raises, with its stable machine codes.

`CredentialError.code` is one of `REASON_CODES`; servers map it to a problem+json answer and
terminals show it and store it with the scan record. Codes are stable: add, never rename.
"""

from __future__ import annotations

from typing import Final

__all__ = ["REASON_CODES", "CredentialError"]

REASON_CODES: Final = frozenset(
    {
        "credential.malformed",
        "credential.unknown_key",
        "credential.key_not_valid",
        "credential.bad_signature",
        "credential.expired",
        "credential.not_yet_valid",
        "credential.revoked",
        "credential.device_certificate_expired",
        "credential.stale_timestamp",
        "credential.offline_limit_exceeded",
    }
)


class CredentialError(Exception):
    """A credential was refused; `code` says why in a stable machine-readable form."""

    __slots__ = ("code",)

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
