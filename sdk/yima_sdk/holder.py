"""The phone side of offline ride codes: hold a device key and its certificate, sign ride codes.

The private key never leaves the phone (export it only into the platform keystore); the server sees
the public key once, when it certifies it.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from yima_sdk.codes import DeviceCertificate, decode_device_certificate, sign_ride_code

__all__ = ["Holder"]


class Holder:
    """A device key, the certificate the server issued for it, and the certificate's use counter."""

    def __init__(self, device_key: Ed25519PrivateKey) -> None:
        self._key = device_key
        self._certificate: bytes | None = None
        self._counter = 0

    @classmethod
    def generate(cls) -> Holder:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> Holder:
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def private_bytes(self) -> bytes:
        """The raw 32-byte private key, for the phone's keystore only."""
        return self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    @property
    def device_public_key(self) -> bytes:
        """The raw 32-byte public key to send for certification."""
        return self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def certificate(self) -> DeviceCertificate | None:
        return None if self._certificate is None else decode_device_certificate(self._certificate)

    @property
    def counter(self) -> int:
        """The last counter used with the current certificate (0: none yet)."""
        return self._counter

    def install_certificate(self, certificate: bytes, counter: int = 0) -> DeviceCertificate:
        """Keep a certificate issued for this key; `counter` restores the last used one after a restart."""
        parsed = decode_device_certificate(certificate)
        if parsed.device_public_key != self.device_public_key:
            raise ValueError("the certificate certifies another device key")
        self._certificate = certificate
        self._counter = counter
        return parsed

    def ride_code(self, now: float, counter: int | None = None) -> str:
        """Sign a ride code for time `now` (unix seconds); without `counter`, use the next one."""
        if self._certificate is None:
            raise ValueError("no device certificate installed")
        if counter is None:
            counter = self._counter + 1
        self._counter = max(self._counter, counter)
        return sign_ride_code(self._key, self._certificate, int(now), counter)
