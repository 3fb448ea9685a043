"""Signatures on the provider protocol: HMAC-SHA256 on merchant requests, Ed25519 on provider notifications."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from server.wire import b64url, b64url_decode

# Header names, as the provider documents them.
REQUEST_AUTH = "Pay-Authorization"
NOTIFY_TIMESTAMP = "Pay-Timestamp"
NOTIFY_NONCE = "Pay-Nonce"
NOTIFY_SIGNATURE = "Pay-Signature"


def request_message(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return b"\n".join([method.upper().encode(), path.encode(), timestamp.encode(), nonce.encode(), body])


def sign_request(
    key: str, merchant_id: str, method: str, path: str, timestamp: str, nonce: str, body: bytes
) -> str:
    mac = hmac.new(
        key.encode(), request_message(method, path, timestamp, nonce, body), hashlib.sha256
    ).digest()
    return f"merchant_id={merchant_id},timestamp={timestamp},nonce={nonce},signature={b64url(mac)}"


def parse_request_auth(header: str) -> dict[str, str]:
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    return {k.strip(): v.strip() for k, v in parts.items()}


def check_request(key: str, parts: Mapping[str, str], method: str, path: str, body: bytes) -> bool:
    expected = hmac.new(
        key.encode(),
        request_message(method, path, parts.get("timestamp", ""), parts.get("nonce", ""), body),
        hashlib.sha256,
    ).digest()
    try:
        given = b64url_decode(parts.get("signature", ""))
    except ValueError:
        return False
    return hmac.compare_digest(expected, given)


def notification_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    return timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body


def sign_notification(key: Ed25519PrivateKey, timestamp: str, nonce: str, body: bytes) -> str:
    return b64url(key.sign(notification_message(timestamp, nonce, body)))


def check_notification(
    key: Ed25519PublicKey, timestamp: str, nonce: str, body: bytes, signature: str
) -> bool:
    try:
        key.verify(b64url_decode(signature), notification_message(timestamp, nonce, body))
    except (InvalidSignature, ValueError):
        return False
    return True
