"""The server's time, signed by a trust-list root key: how a terminal learns what time it is at each sync.

`GET /v1/terminal/time?nonce=N&terminal_time=T` answers an envelope like the trust list's: the exact statement
bytes (base64url) and a detached Ed25519 signature by a root key the terminal pins. The signature covers a
context prefix and the statement, so a time statement can never pass for a trust list (or anything else the
root signs), and the statement echoes the terminal's fresh nonce, so an old answer replayed by someone on the
path is refused instead of setting the terminal's clock back.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Final

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from yima_sdk._ed25519 import VerifyKey
from yima_sdk._wire import b64decode, b64encode
from yima_sdk.trust import TrustListError

__all__ = ["sign_server_time", "verify_server_time"]

_CONTEXT: Final = b"yima server time v1\x00"


class _Inbound(msgspec.Struct, forbid_unknown_fields=True):
    """Both ends read these: an unknown field is a version mismatch, refused rather than half-read."""


class _Statement(_Inbound):
    server_time_ms: int
    nonce: str


class _Envelope(_Inbound):
    statement: str
    signature: str
    root_key_id: str


_statement_decoder = msgspec.json.Decoder(_Statement)
_envelope_decoder = msgspec.json.Decoder(_Envelope)
_encoder = msgspec.json.Encoder()


def sign_server_time(
    root_private_key: Ed25519PrivateKey, root_key_id: str, server_time_ms: int, nonce: str
) -> bytes:
    """Server side: the signed answer to a terminal's time request."""
    statement = _encoder.encode(_Statement(server_time_ms=server_time_ms, nonce=nonce))
    return _encoder.encode(
        _Envelope(
            statement=b64encode(statement),
            signature=b64encode(root_private_key.sign(_CONTEXT + statement)),
            root_key_id=root_key_id,
        )
    )


def verify_server_time(
    envelope: bytes, root_public_keys: Mapping[str, Ed25519PublicKey | bytes], nonce: str
) -> int:
    """The server's time (unix milliseconds) from a signed answer to the request that sent `nonce`.

    Raises `TrustListError`: `time.malformed`, `trust_list.unknown_root`, `time.bad_signature`, `time.nonce_mismatch`.
    """
    try:
        wire = _envelope_decoder.decode(envelope)
        statement = b64decode(wire.statement)
        signature = b64decode(wire.signature)
    except (msgspec.DecodeError, ValueError, binascii.Error) as exc:
        raise TrustListError("time.malformed", str(exc)) from None
    root = root_public_keys.get(wire.root_key_id)
    if root is None:
        raise TrustListError("trust_list.unknown_root", f"root key {wire.root_key_id!r} is not pinned")
    if isinstance(root, Ed25519PublicKey):
        root = root.public_bytes(Encoding.Raw, PublicFormat.Raw)
    if not VerifyKey(root).verifies(signature, _CONTEXT + statement):
        raise TrustListError("time.bad_signature")
    try:
        signed = _statement_decoder.decode(statement)
    except msgspec.DecodeError as exc:
        raise TrustListError("time.malformed", str(exc)) from None
    if signed.nonce != nonce:
        raise TrustListError("time.nonce_mismatch", "the answer is not to this request")
    return signed.server_time_ms
