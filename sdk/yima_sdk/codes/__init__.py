"""Compact signed credentials (Ankang code, device certificate, offline ride code) and their verifier.

Exception tree (one class, many stable codes)::

    CredentialError(code)   code in REASON_CODES, e.g. "credential.malformed", "credential.expired"
"""

from yima_sdk._credential_errors import REASON_CODES, CredentialError
from yima_sdk._ed25519 import public_key_valid
from yima_sdk.codes._formats import (
    ALG_ED25519,
    ANKANG_PREFIX,
    RIDE_PREFIX,
    AnkangCode,
    Colour,
    DeviceCertificate,
    RideCode,
    certificate_serial,
    decode,
    decode_device_certificate,
    decode_many,
    ride_certificate_text,
)
from yima_sdk.codes._issue import issue_ankang_code, issue_device_certificate, sign_ride_code
from yima_sdk.codes._verifier import VerifiedCode, Verifier

__all__ = [
    "ALG_ED25519",
    "ANKANG_PREFIX",
    "REASON_CODES",
    "RIDE_PREFIX",
    "AnkangCode",
    "Colour",
    "CredentialError",
    "DeviceCertificate",
    "RideCode",
    "VerifiedCode",
    "Verifier",
    "certificate_serial",
    "decode",
    "decode_device_certificate",
    "decode_many",
    "issue_ankang_code",
    "issue_device_certificate",
    "public_key_valid",
    "ride_certificate_text",
    "sign_ride_code",
]
