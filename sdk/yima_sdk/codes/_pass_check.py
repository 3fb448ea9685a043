"""App passes (`YP1.`, yima_sdk.passes: tickets, door plates) as a `Verifier` checks them: the signing key on the
trust list for `app_pass` as a key of the pass issuer (`TrustedKeys.pass_keys`: a partner county's key never signs
our apps' passes), the signature good, the pass not expired (with the clock-skew tolerance), and not on the
revocation list the terminal synced for that issuer (`app_pass` entries: a pass its app revoked, e.g. a cancelled
ticket). What a pass admits only its issuing app knows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from yima_sdk._credential_errors import CredentialError
from yima_sdk._ed25519 import VerifyKey
from yima_sdk.codes._verified import VerifiedCode
from yima_sdk.passes import open_pass

if TYPE_CHECKING:  # yima_sdk.trust imports yima_sdk.codes, which imports this module
    from yima_sdk.trust import RevocationSet

__all__ = ["verify_pass"]


def verify_pass(
    pass_keys: Mapping[bytes, tuple[int, VerifyKey]],
    payload: str,
    now: float,
    clock_skew_s: float,
    revocations: RevocationSet | None = None,
) -> VerifiedCode | CredentialError:
    """An app pass: its key on the trust list (type `app_pass`), its signature, its expiry, not revoked."""
    try:
        claims, signed, signature = open_pass(payload)
        key_id = bytes.fromhex(claims.kid)
    except CredentialError as exc:
        return exc
    except ValueError:
        return CredentialError("credential.unknown_key", "a pass key id is 8 hex digits")
    found = pass_keys.get(key_id)
    if found is None:
        return CredentialError(
            "credential.unknown_key", "not a pass key of the pass issuer on the trust list"
        )
    issuer, key = found
    if not key.verifies(signature, signed):
        return CredentialError("credential.bad_signature")
    if claims.exp + clock_skew_s < now:
        return CredentialError("credential.expired")
    if revocations is not None and revocations.pass_revoked(issuer, claims.p):
        return CredentialError("credential.revoked", "pass revoked")
    return VerifiedCode(
        kind="app_pass",
        issuer=issuer,
        key_id=key_id,
        subject_ref=b"",
        colour=None,
        issued_at=0,
        expires_at=claims.exp,
        replay_key=f"P{claims.a}:{claims.p}".encode(),
        app_pass=claims,
    )
