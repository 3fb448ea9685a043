"""The checks every scanned code passes, online or offline: its signature against the trust list (with a recheck
for a key newer than this worker's list), its subject, revocation and the scene's policy."""

from __future__ import annotations

import asyncpg
from yima_sdk.codes import CredentialError, VerifiedCode

from server.terminals.policies import ScenePolicy
from server.terminals.ports import CodeCredentials, CodeSubject


class CodeChecks:
    def __init__(self, credentials: CodeCredentials) -> None:
        self.credentials = credentials
        self.issuer = credentials.trust.issuer
        self._refs = credentials.ankang.refs

    @property
    def clock_skew_s(self) -> float:
        return self.credentials.trust.clock_skew_s

    async def verify(self, payload: str, at: float, conn: asyncpg.Connection | None = None) -> VerifiedCode:
        trust = self.credentials.trust
        try:
            return trust.verifier.verify(payload, at)
        except CredentialError as exc:
            if exc.code == "credential.unknown_key" and await trust.recheck_for_unknown_key(conn):
                return trust.verifier.verify(payload, at)
            raise

    def subject(self, code: VerifiedCode) -> CodeSubject | None:
        """The resident behind one of our own codes; None for a partner county's, an app pass (it names no one) or a
        broken reference."""
        if code.issuer != self.issuer or code.kind == "app_pass":
            return None
        return self._refs.open(code.subject_ref)

    def refusal(self, code: VerifiedCode, subject: CodeSubject | None, before: float) -> str | None:
        """Why a verified code is refused whatever the scene: a reference we cannot open, or revoked at or before
        `before` (the durable revocation list)."""
        if code.kind == "ankang_code" and code.issuer == self.issuer and subject is None:
            return "credential.malformed"
        revocations = self.credentials.revocations
        at = revocations.revoked_at(code.issuer, "subject", code.subject_ref)
        if at is None and code.certificate_serial is not None:
            at = revocations.revoked_at(code.issuer, "device_certificate", code.certificate_serial)
        return "credential.revoked" if at is not None and at.timestamp() <= before else None

    @staticmethod
    def policy_reason(policy: ScenePolicy, code: VerifiedCode) -> str | None:
        """Why the scene refuses this code (its colour, or a ride code where rides are not taken), or None."""
        if code.kind == "ride_code":
            return None if policy.accept_ride_codes else "policy.credential_type_not_allowed"
        if code.colour not in policy.allowed_colours:
            return "policy.color_not_allowed"
        return None

    @staticmethod
    def spends(policy: ScenePolicy, code: VerifiedCode) -> bool:
        """A code spent once anywhere: in a payment scene (replay "once"), and every ride code."""
        return policy.replay == "once" or code.kind == "ride_code"
