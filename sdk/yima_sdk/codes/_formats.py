"""Byte layouts of yima credentials and their strict decoding: Ankang codes, device certificates and offline ride
codes. docs/credentials.md draws every layout byte by byte; issuing (signing) them is `_issue.py`.

Every credential starts with the same two bytes — (format version << 4 | credential type), then the
signature algorithm — and ends with the signature over every byte before it, so a signature made for
one type can never be read as another. All integers are big-endian; the issuer division code takes
three bytes (it is below 2**24). The layouts are this tight because a ride code carries two 64-byte
signatures and must still fit a version-10 QR at error correction M (311 alphanumeric characters).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence
from typing import Final, Literal

import msgspec

from yima_sdk import base45
from yima_sdk._credential_errors import CredentialError

__all__ = [
    "ALG_ED25519",
    "ANKANG_PREFIX",
    "RIDE_PREFIX",
    "TYPE_ANKANG_CODE",
    "TYPE_DEVICE_CERTIFICATE",
    "TYPE_RIDE_CODE",
    "AnkangCode",
    "Colour",
    "DeviceCertificate",
    "RideCode",
    "certificate_serial",
    "decode",
    "decode_device_certificate",
    "decode_many",
    "ride_certificate_text",
]

FORMAT_VERSION: Final = 1
ALG_ED25519: Final = 1
"""Signature algorithm ids. 2 is reserved for SM2 (GB/T 32918) with SM3; a new id needs no format change."""

TYPE_ANKANG_CODE: Final = 1
TYPE_DEVICE_CERTIFICATE: Final = 2
TYPE_RIDE_CODE: Final = 3

ANKANG_PREFIX: Final = "YA:"
RIDE_PREFIX: Final = "YR:"

Colour = Literal["green", "yellow", "red"]
COLOUR_OF: Final[dict[int, Colour]] = {1: "green", 2: "yellow", 3: "red"}
COLOUR_BYTE: Final[dict[str, int]] = {v: k for k, v in COLOUR_OF.items()}

SIGNATURE_SIZE: Final = 64
KEY_ID_SIZE: Final = 4
REF_SIZE: Final = 16
SERIAL_SIZE: Final = 8

# The "I" after the first byte holds alg (top byte) and the 3-byte issuer: one unpack, no slicing.
# version|type, alg|issuer, key id, subject ref, colour, issued-at (s), validity (s)
ANKANG_BODY: Final = struct.Struct(">BI4s16sBIH")
# version|type, alg|issuer, key id, account ref, device public key, issued-at (s),
# lifetime (hours), max offline uses, max offline amount (fen, 3 bytes as B + H)
CERT_BODY: Final = struct.Struct(">BI4s16s32sIHHBH")
# version|type, alg (of the device signature) | certificate | timestamp (unix s), use counter
RIDE_HEAD: Final = struct.Struct(">BB")
RIDE_TAIL: Final = struct.Struct(">IH")
ANKANG_HEAD_BYTE: Final = FORMAT_VERSION << 4 | TYPE_ANKANG_CODE
CERT_HEAD_BYTE: Final = FORMAT_VERSION << 4 | TYPE_DEVICE_CERTIFICATE
RIDE_HEAD_BYTE: Final = FORMAT_VERSION << 4 | TYPE_RIDE_CODE

ANKANG_SIZE: Final = ANKANG_BODY.size + SIGNATURE_SIZE
CERTIFICATE_SIZE: Final = CERT_BODY.size + SIGNATURE_SIZE
RIDE_SIZE: Final = RIDE_HEAD.size + CERTIFICATE_SIZE + RIDE_TAIL.size + SIGNATURE_SIZE
_RIDE_TAIL_AT: Final = RIDE_HEAD.size + CERTIFICATE_SIZE
# Longest payload text worth decoding: anything longer is refused before any Base45 work.
_MAX_TEXT: Final = len(RIDE_PREFIX) + (RIDE_SIZE // 2) * 3 + 2
# A ride code's Base45 text encodes its head, then its certificate, in whole byte pairs (both sizes are even),
# so the certificate is one run of the text, the same in every ride code the phone shows with it.
RIDE_TEXT_SIZE: Final = len(RIDE_PREFIX) + RIDE_SIZE // 2 * 3
_RIDE_CERT_TEXT_AT: Final = len(RIDE_PREFIX) + RIDE_HEAD.size // 2 * 3
_RIDE_CERT_TEXT_END: Final = _RIDE_CERT_TEXT_AT + CERTIFICATE_SIZE // 2 * 3
assert RIDE_HEAD.size % 2 == 0 and CERTIFICATE_SIZE % 2 == 0 and RIDE_SIZE % 2 == 0

# Groups of credentials read in place: `Verifier.verify_many` decodes a group's Base45 text into one buffer
# of fixed-size records and reads every record with one `iter_unpack` per layout below (C loops, no Python
# call per code). Each layout covers a whole record, so the records stay aligned.
ANKANG_TEXT_SIZE: Final = len(ANKANG_PREFIX) + ANKANG_SIZE // 2 * 3
ANKANG_RECORD: Final = struct.Struct(">B8s16sBIH64s")
"""An Ankang code: version|type, alg|issuer|key id (the issuer key's reference), subject ref, colour,
issued-at, validity, signature."""
ANKANG_SIGNED_SIZE: Final = ANKANG_BODY.size
ANKANG_SIGNED: Final = struct.Struct(f">{ANKANG_SIGNED_SIZE}s{SIGNATURE_SIZE}x")
ANKANG_REPLAY: Final = struct.Struct(f">2x28s{ANKANG_SIZE - 30}x")
"""Issuer, key id, subject ref, colour and issued-at: what makes one code instance (its replay key)."""
RIDE_REST_SIZE: Final = RIDE_SIZE - CERTIFICATE_SIZE
RIDE_REST: Final = struct.Struct(">BBIH64s")
"""A ride code around its certificate: version|type, alg, timestamp, counter, device signature."""
RIDE_REST_PARTS: Final = struct.Struct(f">{RIDE_HEAD.size}s{RIDE_TAIL.size}s{SIGNATURE_SIZE}x")
"""The head's and the tail's bytes, which the device signature covers around the certificate."""
RIDE_CERTIFICATE_TEXT: Final = slice(_RIDE_CERT_TEXT_AT, _RIDE_CERT_TEXT_END)
assert ANKANG_RECORD.size == ANKANG_SIGNED.size == ANKANG_REPLAY.size == ANKANG_SIZE
assert RIDE_REST.size == RIDE_REST_PARTS.size == RIDE_REST_SIZE


class AnkangCode(msgspec.Struct, frozen=True, gc=False):
    """A decoded dynamic Ankang code (not yet verified)."""

    issuer: int
    """Administrative division code of the issuing county, e.g. 341822 (Guangde)."""
    key_id: bytes
    subject_ref: bytes
    """16 opaque bytes only the issuing server can resolve to a resident."""
    colour: Colour
    issued_at: int
    validity_s: int
    alg: int
    signed: bytes
    """The bytes the signature covers (everything before it)."""
    signature: bytes

    @property
    def expires_at(self) -> int:
        return self.issued_at + self.validity_s


class DeviceCertificate(msgspec.Struct, frozen=True, gc=False):
    """A decoded device certificate: the server binds a phone's key to a one-card account."""

    issuer: int
    key_id: bytes
    account_ref: bytes
    device_public_key: bytes
    """Raw public key of the phone; its algorithm is the certificate's `alg` (one suite per certificate)."""
    issued_at: int
    lifetime_h: int
    max_offline_uses: int
    max_offline_amount_fen: int
    alg: int
    signed: bytes
    signature: bytes

    @property
    def expires_at(self) -> int:
        return self.issued_at + 3600 * self.lifetime_h

    @property
    def serial(self) -> bytes:
        """The certificate serial: the first 8 bytes of SHA-256 over the signed body.

        Derived rather than carried, which saves the 8 bytes a ride code needs to fit its QR limit;
        the server records it at issue time and revokes by it.
        """
        return certificate_serial(self.signed)

    @property
    def raw(self) -> bytes:
        """The certificate's exact wire bytes."""
        return self.signed + self.signature


class RideCode(msgspec.Struct, frozen=True, gc=False):
    """A decoded offline ride code: a device certificate plus the device's signed timestamp and counter."""

    certificate: DeviceCertificate
    timestamp: int
    counter: int
    alg: int
    signed: bytes
    signature: bytes


def _malformed(detail: str) -> CredentialError:
    return CredentialError("credential.malformed", detail)


def certificate_serial(signed_body: bytes) -> bytes:
    """Serial of a device certificate from its signed body (the certificate minus its signature)."""
    return hashlib.sha256(signed_body).digest()[:SERIAL_SIZE]


def _parse_certificate(raw: bytes, at: int) -> DeviceCertificate:
    (
        head,
        alg_issuer,
        key_id,
        account_ref,
        device_public_key,
        issued_at,
        lifetime_h,
        max_uses,
        amount_high,
        amount_low,
    ) = CERT_BODY.unpack_from(raw, at)
    if head != CERT_HEAD_BYTE:
        raise _malformed("unknown certificate version or type")
    alg = alg_issuer >> 24
    if alg != ALG_ED25519:
        raise _malformed("unknown certificate algorithm")
    end = at + CERT_BODY.size
    return DeviceCertificate(
        issuer=alg_issuer & 0xFFFFFF,
        key_id=key_id,
        account_ref=account_ref,
        device_public_key=device_public_key,
        issued_at=issued_at,
        lifetime_h=lifetime_h,
        max_offline_uses=max_uses,
        max_offline_amount_fen=amount_high << 16 | amount_low,
        alg=alg,
        signed=raw[at:end],
        signature=raw[end : end + SIGNATURE_SIZE],
    )


def decode_device_certificate(raw: bytes) -> DeviceCertificate:
    """Decode a device certificate's wire bytes strictly (exact length, known version and algorithms)."""
    if len(raw) != CERTIFICATE_SIZE:
        raise _malformed("device certificate has the wrong length")
    return _parse_certificate(raw, 0)


def _decode_ankang(raw: bytes) -> AnkangCode:
    if len(raw) != ANKANG_SIZE:
        raise _malformed("Ankang code has the wrong length")
    head, alg_issuer, key_id, subject_ref, colour, issued_at, validity = ANKANG_BODY.unpack_from(raw)
    if head != ANKANG_HEAD_BYTE:
        raise _malformed("unknown Ankang code version or type")
    alg = alg_issuer >> 24
    if alg != ALG_ED25519:
        raise _malformed("unknown signature algorithm")
    colour_name = COLOUR_OF.get(colour)
    if colour_name is None:
        raise _malformed("unknown status colour")
    if validity == 0:
        raise _malformed("zero validity")
    return AnkangCode(
        issuer=alg_issuer & 0xFFFFFF,
        key_id=key_id,
        subject_ref=subject_ref,
        colour=colour_name,
        issued_at=issued_at,
        validity_s=validity,
        alg=alg,
        signed=raw[: ANKANG_BODY.size],
        signature=raw[ANKANG_BODY.size :],
    )


def _decode_ride(raw: bytes) -> RideCode:
    if len(raw) != RIDE_SIZE:
        raise _malformed("ride code has the wrong length")
    alg = ride_alg(raw)
    certificate = _parse_certificate(raw, RIDE_HEAD.size)
    if certificate.alg != alg:
        raise _malformed("ride code algorithm differs from the certificate's suite")
    timestamp, counter = ride_tail(raw, _RIDE_TAIL_AT)
    cut = RIDE_SIZE - SIGNATURE_SIZE
    return RideCode(
        certificate=certificate,
        timestamp=timestamp,
        counter=counter,
        alg=alg,
        signed=raw[:cut],
        signature=raw[cut:],
    )


def _decode_ride_around(rest: bytes, certificate: DeviceCertificate) -> RideCode:
    """`_decode_ride` for a ride code whose certificate was decoded before: `rest` is the rest of its bytes
    (head, tail and signature, in that order), decoded from the text around the certificate's."""
    alg = ride_alg(rest)
    if certificate.alg != alg:
        raise _malformed("ride code algorithm differs from the certificate's suite")
    timestamp, counter = ride_tail(rest, RIDE_HEAD.size)
    cut = RIDE_HEAD.size + RIDE_TAIL.size
    return RideCode(
        certificate=certificate,
        timestamp=timestamp,
        counter=counter,
        alg=alg,
        signed=b"".join(
            (rest[: RIDE_HEAD.size], certificate.signed, certificate.signature, rest[RIDE_HEAD.size : cut])
        ),
        signature=rest[cut:],
    )


def ride_alg(raw: bytes) -> int:
    head, alg = RIDE_HEAD.unpack_from(raw)
    if head != RIDE_HEAD_BYTE:
        raise _malformed("unknown ride code version or type")
    if alg != ALG_ED25519:
        raise _malformed("unknown signature algorithm")
    return int(alg)


def ride_tail(raw: bytes, at: int) -> tuple[int, int]:
    timestamp, counter = RIDE_TAIL.unpack_from(raw, at)
    if counter == 0:
        raise _malformed("ride code counter starts at 1")
    return timestamp, counter


def ride_certificate_text(payload: str) -> str:
    """The Base45 text of the device certificate inside a ride code's payload (which `decode` accepted).

    The same in every ride code shown with that certificate: `decode` and `decode_many` take a mapping from
    such texts to the certificates already decoded from them, and then decode only the text around it.
    """
    return payload[RIDE_CERTIFICATE_TEXT]


def _known_certificate(
    payload: str, certificates: Mapping[str, DeviceCertificate] | None
) -> DeviceCertificate | None:
    if certificates and len(payload) == RIDE_TEXT_SIZE and payload[:3] == RIDE_PREFIX:
        return certificates.get(ride_certificate_text(payload))
    return None


def ride_rest(raw: bytes) -> bytes:
    """A decoded ride code's bytes around its certificate (head, tail, signature): a `RIDE_REST` record."""
    return raw[: RIDE_HEAD.size] + raw[_RIDE_TAIL_AT:]


def text_around_certificate(payload: str) -> str:
    # Both runs are whole Base45 triplets, so they decode to the bytes around the certificate's.
    return payload[len(RIDE_PREFIX) : _RIDE_CERT_TEXT_AT] + payload[_RIDE_CERT_TEXT_END:]


def decode(
    payload: str, certificates: Mapping[str, DeviceCertificate] | None = None
) -> AnkangCode | RideCode:
    """Decode QR payload text into an unverified credential; raise `CredentialError` if malformed.

    `certificates`: device certificates decoded before, by their text (`ride_certificate_text`); a ride code
    carrying one of them is decoded around it, with the same result.
    """
    _check_text(payload)
    certificate = _known_certificate(payload, certificates)
    try:
        raw = base45.decode(payload[3:] if certificate is None else text_around_certificate(payload))
    except base45.Base45Error as exc:
        raise _malformed(str(exc)) from None
    if certificate is not None:
        return _decode_ride_around(raw, certificate)
    return _decode_ankang(raw) if payload[:3] == ANKANG_PREFIX else _decode_ride(raw)


def decode_many(
    payloads: Sequence[str], certificates: Mapping[str, DeviceCertificate] | None = None
) -> list[AnkangCode | RideCode | CredentialError]:
    """Decode a group of payloads: per payload, what `decode` (with the same `certificates`) returns or the
    error it raises.

    The Base45 text of the whole group is decoded at once (`base45.decode_many`), the hot path of
    terminals and batch uploads.
    """
    out: list[AnkangCode | RideCode | CredentialError | None] = [None] * len(payloads)
    positions: list[int] = []  # the payloads whose Base45 text is decoded
    texts: list[str] = []
    known: list[DeviceCertificate | None] = []
    for i, payload in enumerate(payloads):
        try:
            _check_text(payload)
        except CredentialError as exc:
            out[i] = exc
            continue
        certificate = _known_certificate(payload, certificates)
        positions.append(i)
        texts.append(payload[3:] if certificate is None else text_around_certificate(payload))
        known.append(certificate)
    for i, certificate, raw in zip(positions, known, base45.decode_many(texts), strict=True):
        try:
            if isinstance(raw, base45.Base45Error):
                raise _malformed(str(raw))
            if certificate is not None:
                out[i] = _decode_ride_around(raw, certificate)
            else:
                out[i] = _decode_ankang(raw) if payloads[i][:3] == ANKANG_PREFIX else _decode_ride(raw)
        except CredentialError as exc:
            out[i] = exc
    return out  # type: ignore[return-value]  # every slot was filled above


def _check_text(payload: str) -> None:
    if len(payload) > _MAX_TEXT:
        raise _malformed("payload too long")
    prefix = payload[:3]
    if prefix != ANKANG_PREFIX and prefix != RIDE_PREFIX:
        raise _malformed("unknown payload prefix")
