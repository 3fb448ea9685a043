"""`Verifier`: the one credential check shared by the server scan path and offline terminals.

A check costs one Ed25519 verification for an Ankang code and two for a ride code (one when the
device certificate was already verified by this `Verifier`: certificates are cached by their exact
bytes, and decoded only once: a ride code carrying a cached certificate is decoded around it).
Signatures are verified by libsodium (`yima_sdk._ed25519`). Reason codes: see `_errors.py`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Literal

import msgspec

from yima_sdk._ed25519 import NULL, VerifyKey, sodium_open
from yima_sdk.codes._errors import CredentialError
from yima_sdk.codes._formats import (
    ALG_ED25519,
    AnkangCode,
    Colour,
    DeviceCertificate,
    RideCode,
    decode,
    decode_many,
    ride_certificate_text,
)

if TYPE_CHECKING:
    # Only for annotations: yima_sdk.trust imports from this package.
    from yima_sdk.trust import RevocationSet, TrustList

__all__ = ["VerifiedCode", "Verifier"]

_RIDE_REPLAY: Final = struct.Struct(">cI8sH")


class VerifiedCode(msgspec.Struct, frozen=True, gc=False):
    """What a verified credential tells its reader. Ride-only fields are None for Ankang codes."""

    kind: Literal["ankang_code", "ride_code"]
    issuer: int
    key_id: bytes
    """Key id of the issuer key that signed the code (ride code: that signed the device certificate)."""
    subject_ref: bytes
    """Ankang code: the pseudonymous subject ref. Ride code: the certificate's account ref."""
    colour: Colour | None
    issued_at: int
    expires_at: int
    replay_key: bytes
    """Identifies this code instance: the same bytes for the same Ankang code, or the same ride
    certificate and counter however often it is shown."""
    certificate_serial: bytes | None = None
    counter: int | None = None
    max_offline_uses: int | None = None
    max_offline_amount_fen: int | None = None


class _IssuerKey:
    __slots__ = ("credential_types", "not_after", "not_before", "public_key")

    def __init__(self, public_key: VerifyKey, credential_types: frozenset[str], nb: int, na: int):
        self.public_key = public_key
        self.credential_types = credential_types
        self.not_before = nb
        self.not_after = na


class Verifier:
    """Verifies Ankang and ride codes against one trust list, with an explicit clock-skew tolerance."""

    def __init__(
        self,
        trust_list: TrustList,
        *,
        clock_skew_s: float = 30.0,
        ride_window_s: float = 60.0,
        certificate_cache_size: int = 4096,
    ) -> None:
        self.trust_list = trust_list
        self.clock_skew_s = clock_skew_s
        self.ride_window_s = ride_window_s
        self._entries = {(e.issuer, e.key_id): e for e in trust_list.entries}
        self._keys: dict[tuple[int, bytes], _IssuerKey] = {}
        # the keys that passed `_issuer_key`'s checks for Ankang codes: verify_many's lookup
        self._ankang_keys: dict[tuple[int, bytes], _IssuerKey] = {}
        # exact certificate bytes -> (device public key, serial), filled only after a full check; and the
        # same certificates by their Base45 text in ride codes, so each is decoded once. The texts only spare
        # decoding work: whether a certificate was checked is always looked up by its bytes.
        self._certificates: dict[bytes, tuple[VerifyKey, bytes]] = {}
        self._certificate_texts: dict[str, DeviceCertificate] = {}
        self._certificate_cache_size = certificate_cache_size

    def _issuer_key(self, issuer: int, key_id: bytes, alg: int, credential_type: str) -> _IssuerKey:
        key = self._keys.get((issuer, key_id))
        if key is None:
            entry = self._entries.get((issuer, key_id))
            if entry is None or entry.alg != alg or alg != ALG_ED25519:
                raise CredentialError("credential.unknown_key", "issuer key is not on the trust list")
            key = _IssuerKey(
                VerifyKey(entry.public_key),
                entry.credential_types,
                entry.not_before,
                entry.not_after,
            )
            self._keys[(issuer, key_id)] = key
        if credential_type not in key.credential_types:
            raise CredentialError("credential.unknown_key", f"key may not sign {credential_type}")
        return key

    def verify(self, payload: str, now: float, *, revocations: RevocationSet | None = None) -> VerifiedCode:
        """Decode and fully check `payload` at time `now` (unix seconds); raise `CredentialError`."""
        code = decode(payload, self._certificate_texts)
        if isinstance(code, AnkangCode):
            self._check_ankang_signature(code)
            return self._check_ankang(code, now, revocations)
        serial = self._check_ride_signatures(code, payload)
        return self._check_ride(code, serial, now, revocations)

    def verify_many(
        self, items: Sequence[tuple[str, float]], *, revocations: RevocationSet | None = None
    ) -> list[VerifiedCode | CredentialError]:
        """Check a group of (payload, now) pairs: per pair, what `verify` returns or the error it raises.

        Three passes over the group instead of one pass per code: decode every payload (the group's Base45
        text at once), then run every Ed25519 verification back to back, then the time, limit and revocation
        checks. The verifications are most of the work, and run measurably faster when no Python work sits
        between them (docs/benchmarks.md). Each code goes through the same checks in the same order as in
        `verify`.
        """
        codes = decode_many([payload for payload, _ in items], self._certificate_texts)
        serials: list[bytes | None] = [None] * len(codes)  # ride codes: the certificate serial
        # Each code's signature check, as `_check_ankang_signature` and `_check_ride_signatures` do it, in
        # three steps: the key and the bytes to verify of every code, then every libsodium call in one tight
        # loop (each call measurably faster with no Python work between calls), then the outcomes. Same
        # checks, same order, same errors: the Ankang key window counts only for a good signature.
        signed_messages: list[bytes] = []
        public_keys: list[bytes] = []
        positions: list[int] = []
        key_window: dict[int, CredentialError] = {}
        ankang_keys, certificates, device_key = self._ankang_keys, self._certificates, self._device_key
        for i, code in enumerate(codes):
            try:
                if type(code) is AnkangCode:
                    key = ankang_keys.get((code.issuer, code.key_id))
                    if key is None:
                        key = self._issuer_key(code.issuer, code.key_id, code.alg, "ankang_code")
                        ankang_keys[(code.issuer, code.key_id)] = key
                    if not key.not_before <= code.issued_at <= key.not_after:
                        key_window[i] = CredentialError(
                            "credential.key_not_valid", "issued outside the key's validity window"
                        )
                    public_key = key.public_key.raw
                elif type(code) is RideCode:
                    cert = code.certificate
                    # a certificate not seen before is fully checked here (its own signature included)
                    device, serials[i] = certificates.get(cert.signed + cert.signature) or device_key(
                        code, items[i][0]
                    )
                    public_key = device.raw
                else:
                    continue
            except CredentialError as exc:
                codes[i] = exc
                continue
            signed_messages.append(code.signature + code.signed)
            public_keys.append(public_key)
            positions.append(i)
        check, null = sodium_open, NULL
        failed = [
            check(null, null, sm, len(sm), pk) for sm, pk in zip(signed_messages, public_keys, strict=True)
        ]
        for i, bad in zip(positions, failed, strict=True):
            if bad:
                ride = type(codes[i]) is RideCode
                codes[i] = CredentialError("credential.bad_signature", "device signature" if ride else "")
            elif key_window and i in key_window:
                codes[i] = key_window[i]
        out: list[VerifiedCode | CredentialError] = []
        check_ankang, check_ride = self._check_ankang, self._check_ride
        for (_, now), code, serial in zip(items, codes, serials, strict=True):
            try:
                if type(code) is AnkangCode:
                    out.append(check_ankang(code, now, revocations))
                elif type(code) is RideCode:
                    assert serial is not None
                    out.append(check_ride(code, serial, now, revocations))
                else:
                    assert isinstance(code, CredentialError)  # from an earlier pass
                    out.append(code)
            except CredentialError as exc:
                out.append(exc)
        return out

    def _check_ankang_signature(self, code: AnkangCode) -> None:
        key = self._issuer_key(code.issuer, code.key_id, code.alg, "ankang_code")
        if not key.public_key.verifies(code.signature, code.signed):
            raise CredentialError("credential.bad_signature")
        if not key.not_before <= code.issued_at <= key.not_after:
            raise CredentialError("credential.key_not_valid", "issued outside the key's validity window")

    def _check_ankang(self, code: AnkangCode, now: float, revocations: RevocationSet | None) -> VerifiedCode:
        """The checks after the signature: time window and revocation."""
        skew = self.clock_skew_s
        if code.issued_at > now + skew:
            raise CredentialError("credential.not_yet_valid")
        expires_at = code.issued_at + code.validity_s
        if now > expires_at + skew:
            raise CredentialError("credential.expired")
        if revocations is not None and revocations.subject_revoked(code.issuer, code.subject_ref):
            raise CredentialError("credential.revoked")
        return VerifiedCode(
            kind="ankang_code",
            issuer=code.issuer,
            key_id=code.key_id,
            subject_ref=code.subject_ref,
            colour=code.colour,
            issued_at=code.issued_at,
            expires_at=expires_at,
            # issuer, key id, subject ref, colour, issued-at: one code instance.
            replay_key=b"A" + code.signed[2:30],
        )

    def _check_ride_signatures(self, code: RideCode, payload: str) -> bytes:
        """Check the certificate (unless cached) and the device signature; return the certificate serial."""
        device_key, serial = self._device_key(code, payload)
        if not device_key.verifies(code.signature, code.signed):
            raise CredentialError("credential.bad_signature", "device signature")
        return serial

    def _device_key(self, code: RideCode, payload: str) -> tuple[VerifyKey, bytes]:
        """The device key and serial of `code`'s certificate (decoded from `payload`), checked in full unless
        cached; caches a certificate that passes."""
        cert = code.certificate
        cache_key = cert.signed + cert.signature
        cached = self._certificates.get(cache_key)
        if cached is not None:
            return cached
        key = self._issuer_key(cert.issuer, cert.key_id, cert.alg, "device_certificate")
        if not key.public_key.verifies(cert.signature, cert.signed):
            raise CredentialError("credential.bad_signature", "device certificate signature")
        if not key.not_before <= cert.issued_at <= key.not_after:
            raise CredentialError("credential.key_not_valid", "certificate issued outside the key's window")
        cached = (VerifyKey(cert.device_public_key), cert.serial)
        if len(self._certificates) >= self._certificate_cache_size:
            # Crude but bounded: a bus sees the same riders every day, so refilling is cheap.
            self._certificates.clear()
            self._certificate_texts.clear()
        self._certificates[cache_key] = cached
        self._certificate_texts[ride_certificate_text(payload)] = cert
        return cached

    def _check_ride(
        self, code: RideCode, serial: bytes, now: float, revocations: RevocationSet | None
    ) -> VerifiedCode:
        """The checks after the signatures: certificate and timestamp windows, use limit, revocation."""
        cert = code.certificate
        skew = self.clock_skew_s
        if cert.issued_at > now + skew:
            raise CredentialError("credential.not_yet_valid", "device certificate not yet valid")
        cert_expires_at = cert.expires_at
        if now > cert_expires_at + skew:
            raise CredentialError("credential.device_certificate_expired")
        timestamp = code.timestamp
        if timestamp > now + skew:
            raise CredentialError("credential.not_yet_valid", "ride timestamp in the future")
        if timestamp < now - self.ride_window_s - skew:
            raise CredentialError("credential.stale_timestamp")
        if code.counter > cert.max_offline_uses:
            raise CredentialError("credential.offline_limit_exceeded", "use counter past the limit")
        if revocations is not None and (
            revocations.certificate_revoked(cert.issuer, serial)
            or revocations.subject_revoked(cert.issuer, cert.account_ref)
        ):
            raise CredentialError("credential.revoked")
        return VerifiedCode(
            kind="ride_code",
            issuer=cert.issuer,
            key_id=cert.key_id,
            subject_ref=cert.account_ref,
            colour=None,
            issued_at=timestamp,
            expires_at=min(cert_expires_at, int(timestamp + self.ride_window_s)),
            replay_key=_RIDE_REPLAY.pack(b"R", cert.issuer, serial, code.counter),
            certificate_serial=serial,
            counter=code.counter,
            max_offline_uses=cert.max_offline_uses,
            max_offline_amount_fen=cert.max_offline_amount_fen,
        )
