"""The simulator's credentials: Ankang codes and app passes in the production formats, signed with local dev keys,
and the simulator's own root-signed trust list, so a terminal (`yima_sdk.terminal`) verifies what it issues."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from yima_sdk import contract as c
from yima_sdk.codes import ALG_ED25519, ANKANG_PREFIX, Colour, CredentialError, Verifier, issue_ankang_code
from yima_sdk.documents import sign_document
from yima_sdk.passes import PASS_PREFIX, PassClaims, open_pass, seal_pass, verify_pass_signature
from yima_sdk.trust import TrustEntry, TrustList, build_trust_list

__all__ = ["DEV_ISSUER", "DevCredentials"]

DEV_ISSUER = 341822
"""The simulator issues as Guangde county (its administrative division code), with a dev key of its own."""
ROOT_KEY_ID = "yima-simulator-root"
ANKANG_VALIDITY_S = 60
ANKANG_PERIOD_S = 60
"""The refresh period the simulator's codes are bucketed in (their subject refs change with it)."""


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


class DevCredentials:
    """Fresh dev keys per simulator (nothing to configure, nothing to leak): an issuer key for Ankang codes,
    a pass key, and the root key that signs the simulator's trust list."""

    def __init__(self, app_id: str, clock: Callable[[], float]) -> None:
        self.app_id = app_id
        self.clock = clock
        self._root = Ed25519PrivateKey.generate()
        self._issuer = Ed25519PrivateKey.generate()
        self._issuer_kid = hashlib.sha256(_raw(self._issuer)).digest()[:4]
        self._pass_key = Ed25519PrivateKey.generate()
        self.pass_kid = hashlib.sha256(_raw(self._pass_key)).hexdigest()[:8]
        self._subjects: dict[bytes, str] = {}
        self._pass_numbers = itertools.count(1)
        self._holders: dict[int, str | None] = {}
        """Pass number -> holder (as production keeps it: a pass names no one)."""
        self.issued: set[int] = set()
        self.revoked: set[int] = set()
        self.shared: dict[str, dict[str, str]] = {}
        """Other apps whose passes this app honours -> their holders' ids there -> fixture resident name."""
        now = int(clock())
        self.trust_list_envelope = build_trust_list(
            [
                TrustEntry(
                    issuer=DEV_ISSUER,
                    key_id=self._issuer_kid,
                    alg=ALG_ED25519,
                    public_key=_raw(self._issuer),
                    credential_types=frozenset({"ankang_code"}),
                    not_before=now - 86400,
                    not_after=now + 366 * 86400,
                ),
                TrustEntry(
                    issuer=DEV_ISSUER,
                    key_id=bytes.fromhex(self.pass_kid),
                    alg=ALG_ED25519,
                    public_key=_raw(self._pass_key),
                    credential_types=frozenset({"app_pass"}),
                    not_before=now - 86400,
                    not_after=now + 366 * 86400,
                ),
            ],
            version=1,
            root_private_key=self._root,
            root_key_id=ROOT_KEY_ID,
            issued_at=now,
        )
        """The simulator's trust list, in the envelope format of `GET /v1/trust-list`."""
        self.root_public_keys = {ROOT_KEY_ID: _raw(self._root)}
        """Pin these in a `yima_sdk.terminal.Terminal` to trust the simulator's trust list."""
        self._verifier = Verifier(TrustList.verify(self.trust_list_envelope, self.root_public_keys))

    def sign_document(self, name: str, version: int, effective_from: int, content: bytes) -> bytes:
        """A terminal document's envelope (`yima_sdk.documents`), signed by the simulator's root."""
        return sign_document(
            app_id=self.app_id, name=name, version=version, effective_from=effective_from, content=content,
            issued_at=int(self.clock()), root_private_key=self._root, root_key_id=ROOT_KEY_ID,
        )  # fmt: skip

    def subject_ref(self, holder: str, bucket: int) -> bytes:
        """The subject reference of fixture resident `holder`'s codes of refresh period `bucket`: opaque, as
        production's, new every period, and resolved by this simulator only."""
        ref = hashlib.sha256(f"{holder}\0{bucket}".encode() + _raw(self._root)).digest()[:16]
        self._subjects[ref] = holder
        return ref

    def ankang_code(self, holder: str, colour: Colour, *, valid_s: int = ANKANG_VALIDITY_S) -> str:
        """An Ankang code (`YA:` + Base45, Ed25519) for fixture resident `holder` (see `subject_ref`)."""
        now = int(self.clock())
        ref = self.subject_ref(holder, now // ANKANG_PERIOD_S)
        return issue_ankang_code(self._issuer, self._issuer_kid, DEV_ISSUER, ref, colour, now, valid_s)

    def issue_pass(self, op: c.CredentialsIssuePass, holder: str | None) -> c.AppPass:
        number = next(self._pass_numbers)
        self.issued.add(number)
        self._holders[number] = holder
        claims = PassClaims(
            p=number, a=self.app_id, k=op.kind, s=None, d=op.data, exp=op.valid_until, kid=self.pass_kid
        )
        return c.AppPass(
            id=f"pass_{number}",
            kind=op.kind,
            payload=seal_pass(claims, self._pass_key),
            valid_until=op.valid_until,
        )

    def issue_shared(
        self, issuer: str, holder: str, name: str, kind: str, data: dict[str, Any], valid_until: int
    ) -> str:
        """A pass of app `issuer` (which shares its passes with this app) for `holder`, its id there."""
        self.shared.setdefault(issuer, {})[holder] = name
        number = next(self._pass_numbers)
        self._holders[number] = holder
        claims = PassClaims(p=number, a=issuer, k=kind, s=None, d=data, exp=valid_until, kid=self.pass_kid)
        return seal_pass(claims, self._pass_key)

    def held(self, payload: str, holder: str) -> None:
        """yima.showPass as production checks it (server AppPasses.held): a pass signed here, issued by this
        app, neither expired nor revoked, held by `holder` (an app-scoped id); else CredentialError with the
        same reason (`credential.other_app`, `credential.not_holder`, `credential.bad_signature`...)."""
        claims, signed, signature = open_pass(payload)
        if claims.kid != self.pass_kid:
            raise CredentialError("credential.unknown_key")
        verify_pass_signature(self._pass_key.public_key(), signed, signature)
        if claims.a != self.app_id:
            raise CredentialError("credential.other_app")
        if claims.exp < self.clock():
            raise CredentialError("credential.expired")
        if claims.p not in self.issued or claims.p in self.revoked:
            raise CredentialError("credential.revoked")
        if self._holders.get(claims.p) != holder:
            raise CredentialError("credential.not_holder")

    def revoke_pass(self, pass_id: str) -> bool:
        """True when the pass was issued here and valid until now, as production answers."""
        number = c.id_number(pass_id)
        if number not in self.issued or number in self.revoked:
            return False
        self.revoked.add(number)
        return True

    def verify(
        self,
        payload: str,
        user_id_of: Callable[[str], str | None],
        shows_colour: Callable[[str], bool],
        share_consented: Callable[[str, str], bool] = lambda name, issuer: False,
    ) -> c.Verification:
        """`credentials.verify` as production answers it: the same reasons; the holder's app-scoped id only when
        `user_id_of` gives one (the resident uses the app), the colour only when `shows_colour` (consented),
        another app's pass only when `share_consented(holder, issuer)`."""
        try:
            if payload.startswith(PASS_PREFIX):
                return self._check_pass(payload, user_id_of, share_consented)
            if not payload.startswith(ANKANG_PREFIX):
                raise CredentialError("credential.malformed", "not a code this platform issues")
            code = self._verifier.verify(payload, self.clock())
        except CredentialError as exc:
            return c.Verification(valid=False, reason=exc.code)
        holder = self._subjects.get(code.subject_ref)
        user_id = None if holder is None else user_id_of(holder)
        if holder is None or user_id is None:
            return c.Verification(valid=True, kind=code.kind)
        colour = code.colour if shows_colour(holder) else None
        return c.Verification(valid=True, kind=code.kind, user_id=user_id, health_color=colour)

    def _check_pass(
        self,
        payload: str,
        user_id_of: Callable[[str], str | None],
        share_consented: Callable[[str, str], bool],
    ) -> c.Verification:
        claims, signed, signature = open_pass(payload)
        if claims.kid != self.pass_kid:
            raise CredentialError("credential.unknown_key")
        verify_pass_signature(self._pass_key.public_key(), signed, signature)
        holders = self.shared.get(claims.a) if claims.a != self.app_id else None
        if claims.a != self.app_id and holders is None:
            return c.Verification(valid=False, reason="credential.other_app")
        if claims.exp < self.clock():
            return c.Verification(valid=False, reason="credential.expired")
        if claims.a == self.app_id and claims.p in self.revoked:
            return c.Verification(valid=False, reason="credential.revoked")
        user_id = self._holders.get(claims.p)
        if holders is not None:
            name = holders.get(user_id or "")
            if name is None or not share_consented(name, claims.a):
                return c.Verification(valid=False, reason="credential.share_not_consented")
            user_id = user_id_of(name)
        return c.Verification(
            valid=True,
            kind="app_pass",
            user_id=user_id,
            pass_id=f"pass_{claims.p}",
            data=claims.d,
            issuer_app=claims.a,
        )
