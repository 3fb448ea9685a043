"""Issuing yima credentials: signing Ankang codes and device certificates (the platform) and offline ride codes
(the phone), in the byte layouts `yima_sdk.codes._formats` defines and decodes. docs/credentials.md draws them.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from yima_sdk import base45
from yima_sdk._ed25519 import public_key_valid
from yima_sdk.codes._formats import (
    ALG_ED25519,
    ANKANG_BODY,
    ANKANG_HEAD_BYTE,
    ANKANG_PREFIX,
    CERT_BODY,
    CERT_HEAD_BYTE,
    CERTIFICATE_SIZE,
    COLOUR_BYTE,
    KEY_ID_SIZE,
    REF_SIZE,
    RIDE_HEAD,
    RIDE_HEAD_BYTE,
    RIDE_PREFIX,
    RIDE_TAIL,
    Colour,
)

__all__ = ["issue_ankang_code", "issue_device_certificate", "sign_ride_code"]


def _check_key_id(key_id: bytes) -> None:
    if len(key_id) != KEY_ID_SIZE:
        raise ValueError("key_id must be 4 bytes")


def _check_issuer(issuer: int) -> None:
    if not 100000 <= issuer <= 999999:
        raise ValueError("issuer must be a 6-digit administrative division code")


def issue_ankang_code(
    signing_key: Ed25519PrivateKey,
    key_id: bytes,
    issuer: int,
    subject_ref: bytes,
    colour: Colour,
    issued_at: int,
    validity: int = 120,
) -> str:
    """Sign a dynamic Ankang code and return its QR payload text ("YA:" + Base45)."""
    _check_key_id(key_id)
    _check_issuer(issuer)
    if len(subject_ref) != REF_SIZE:
        raise ValueError("subject_ref must be 16 bytes")
    if not 0 < validity <= 0xFFFF:
        raise ValueError("validity must be 1..65535 seconds")
    body = ANKANG_BODY.pack(
        ANKANG_HEAD_BYTE,
        ALG_ED25519 << 24 | issuer,
        key_id,
        subject_ref,
        COLOUR_BYTE[colour],
        issued_at,
        validity,
    )
    return ANKANG_PREFIX + base45.encode(body + signing_key.sign(body))


def issue_device_certificate(
    signing_key: Ed25519PrivateKey,
    key_id: bytes,
    issuer: int,
    account_ref: bytes,
    device_public_key: bytes,
    issued_at: int,
    lifetime_h: int,
    max_offline_uses: int,
    max_offline_amount_fen: int,
) -> bytes:
    """Sign a device certificate binding `device_public_key` (raw Ed25519, 32 bytes) to an account.

    Returns the certificate bytes; its serial is `decode_device_certificate(raw).serial`.
    """
    _check_key_id(key_id)
    _check_issuer(issuer)
    if len(account_ref) != REF_SIZE or not public_key_valid(device_public_key):
        raise ValueError("account_ref is 16 bytes, device_public_key a valid Ed25519 public key (32 bytes)")
    if not 0 < lifetime_h <= 0xFFFF:
        raise ValueError("lifetime_h must be 1..65535 hours")
    if not 0 <= max_offline_uses <= 0xFFFF or not 0 <= max_offline_amount_fen <= 0xFFFFFF:
        raise ValueError("offline limits: uses up to 65535, amount up to 16777215 fen")
    body = CERT_BODY.pack(
        CERT_HEAD_BYTE,
        ALG_ED25519 << 24 | issuer,
        key_id,
        account_ref,
        device_public_key,
        issued_at,
        lifetime_h,
        max_offline_uses,
        max_offline_amount_fen >> 16,
        max_offline_amount_fen & 0xFFFF,
    )
    return body + signing_key.sign(body)


def sign_ride_code(device_key: Ed25519PrivateKey, certificate: bytes, timestamp: int, counter: int) -> str:
    """Sign an offline ride code on the phone and return its QR payload text ("YR:" + Base45).

    `timestamp` is unix seconds; `counter` counts this certificate's uses from 1.
    """
    if len(certificate) != CERTIFICATE_SIZE:
        raise ValueError("certificate has the wrong size")
    if not 1 <= counter <= 0xFFFF:
        raise ValueError("counter must be 1..65535")
    body = RIDE_HEAD.pack(RIDE_HEAD_BYTE, ALG_ED25519) + certificate + RIDE_TAIL.pack(timestamp, counter)
    return RIDE_PREFIX + base45.encode(body + device_key.sign(body))
