"""`TrustedKeys`: what a `Verifier` trusts, from its trust list: issuer keys looked up and checked once per
(issuer, key id) and credential type, the Ankang keys by the code bytes naming them, device certificates checked
once and then found by their bytes or their Base45 text in a ride code, and the keys that sign app passes.
The checks of each code against them are `_verifier.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from yima_sdk._credential_errors import CredentialError
from yima_sdk._ed25519 import VerifyKey
from yima_sdk.codes._formats import (
    ALG_ED25519,
    RIDE_CERTIFICATE_TEXT,
    AnkangCode,
    DeviceCertificate,
    _decode_ankang,
)
from yima_sdk.codes._verified import CheckedCertificate, IssuerKey

if TYPE_CHECKING:
    # Only for annotations: yima_sdk.trust imports from this package.
    from yima_sdk.trust import TrustList

__all__ = ["TrustedKeys"]


class TrustedKeys:
    """The issuer keys, checked device certificates and app-pass keys of one trust list, with their caches."""

    def __init__(
        self, trust_list: TrustList, certificate_cache_size: int, pass_issuer: int | None = None
    ) -> None:
        self._entries = {(e.issuer, e.key_id): e for e in trust_list.entries}
        self._keys: dict[tuple[int, bytes], IssuerKey] = {}
        # The keys that passed `_issuer_key`'s checks for Ankang codes, by the code's bytes naming the key
        # (alg, issuer, key id): one lookup per code.
        self.ankang_keys: dict[bytes, IssuerKey] = {}
        # Checked certificates by their exact bytes, and the same certificates by their Base45 text in ride
        # codes. Base45 is one-to-one on whole triplets (each triplet stands for one 16-bit value, and values
        # above 65535 are refused), so a text names exactly one certificate: finding it by its text is finding
        # it by its bytes, without decoding them.
        self._certificates: dict[bytes, CheckedCertificate] = {}
        self.certificate_texts: dict[str, CheckedCertificate] = {}
        self._certificate_cache_size = certificate_cache_size
        # The pass keys of one issuer only, by key id: a pass names its key but no issuer, so keys of several
        # issuers by id alone would let one issuer's key (or a colliding id) stand for another's.
        if pass_issuer is None:
            holders = {e.issuer for e in trust_list.entries if "app_pass" in e.credential_types}
            pass_issuer = holders.pop() if len(holders) == 1 else None
        self.pass_issuer = pass_issuer
        self.pass_keys: dict[bytes, tuple[int, VerifyKey]] = {
            e.key_id: (e.issuer, VerifyKey(e.public_key))
            for e in trust_list.entries
            if e.issuer == pass_issuer and "app_pass" in e.credential_types and e.alg == ALG_ED25519
        }

    def issuer_key(self, issuer: int, key_id: bytes, alg: int, credential_type: str) -> IssuerKey:
        key = self._keys.get((issuer, key_id))
        if key is None:
            entry = self._entries.get((issuer, key_id))
            if entry is None or entry.alg != alg or alg != ALG_ED25519:
                raise CredentialError("credential.unknown_key", "issuer key is not on the trust list")
            key = IssuerKey(
                issuer,
                key_id,
                VerifyKey(entry.public_key),
                entry.credential_types,
                entry.not_before,
                entry.not_after,
            )
            self._keys[(issuer, key_id)] = key
        if credential_type not in key.credential_types:
            raise CredentialError("credential.unknown_key", f"key may not sign {credential_type}")
        return key

    def ankang_key(self, key_ref: bytes, raw: bytes) -> IssuerKey:
        """The issuer key of the Ankang code `raw`, decoded in full: raises for a malformed code, then for a
        key the trust list does not allow; caches a key that passes by the code's `key_ref` (its bytes naming
        the key, as `ANKANG_RECORD` reads them)."""
        code: AnkangCode = _decode_ankang(raw)
        key = self.issuer_key(code.issuer, code.key_id, code.alg, "ankang_code")
        self.ankang_keys[key_ref] = key
        return key

    def certificate(self, cert: DeviceCertificate, payload: str) -> CheckedCertificate:
        """`cert` (decoded from the ride code `payload`) checked in full unless checked before; caches a
        certificate that passes, by its bytes and by its text in `payload`."""
        raw = cert.raw
        checked = self._certificates.get(raw)
        if checked is not None:
            return checked
        key = self.issuer_key(cert.issuer, cert.key_id, cert.alg, "device_certificate")
        if not key.public_key.verifies(cert.signature, cert.signed):
            raise CredentialError("credential.bad_signature", "device certificate signature")
        if not key.not_before <= cert.issued_at <= key.not_after:
            raise CredentialError("credential.key_not_valid", "certificate issued outside the key's window")
        checked = CheckedCertificate(cert)
        if len(self._certificates) >= self._certificate_cache_size:
            # Crude but bounded: a bus sees the same riders every day, so refilling is cheap.
            self._certificates.clear()
            self.certificate_texts.clear()
        self._certificates[raw] = checked
        self.certificate_texts[payload[RIDE_CERTIFICATE_TEXT]] = checked
        return checked
