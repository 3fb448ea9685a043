"""AES-GCM encryption of personal fields and HMAC blind indexes, each under a key derived per purpose."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from server.security.derived import DerivedKeys

_VERSION = b"\x01"


class FieldCipher:
    """Encrypts one kind of field; the field name is bound as associated data so ciphertexts cannot be swapped."""

    def __init__(self, keys: DerivedKeys) -> None:
        self._aead = AESGCM(keys.field_encryption)
        self._index_key = keys.blind_index

    def encrypt(self, field: str, plaintext: str) -> bytes:
        nonce = secrets.token_bytes(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode(), field.encode())

    def decrypt(self, field: str, blob: bytes) -> str:
        if blob[:1] != _VERSION:
            raise ValueError("unknown field ciphertext version")
        return self._aead.decrypt(blob[1:13], blob[13:], field.encode()).decode()

    def blind_index(self, field: str, value: str) -> bytes:
        """Deterministic keyed digest for equality lookups; useless without the master key."""
        return hmac.new(self._index_key, field.encode() + b"\x00" + value.encode(), hashlib.sha256).digest()
