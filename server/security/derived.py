"""The keys derived from the master key, one per purpose, by the kernel once at start-up: each domain is handed only
its own, and no domain holds the master key.

Each key is HKDF-SHA256 of the master key with info `yima/<label>` (no salt, 32 bytes); the labels are those the
domains used when they derived their keys themselves, so data and tokens from before stay valid
(tests/test_derived_keys.py pins them). A new purpose gets a new field and a new label, never a reused one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _derive(master_key: bytes, label: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"yima/" + label.encode()).derive(
        master_key
    )


@dataclass(frozen=True, slots=True, repr=False)
class DerivedKeys:
    """One key per purpose; a field's label is its name with dashes (`app_user_id` -> `yima/app-user-id`)."""

    field_encryption: bytes
    """The kernel's AES-GCM of personal fields (server/security/fields.py)."""
    blind_index: bytes
    """The kernel's HMAC blind indexes of phone and ID numbers."""
    audit_chain: bytes
    """audit: the MAC chain of the audit log."""
    otp: bytes
    """identity: login codes' HMAC at rest."""
    ankang_subject_ref: bytes
    """credentials: the pseudonymous subject reference inside Ankang codes."""
    onecard_account_ref: bytes
    """onecard: the pseudonymous account reference in device certificates and ride codes."""
    app_user_id: bytes
    """platform: app-scoped resident ids."""

    @classmethod
    def derive(cls, master_key: bytes) -> DerivedKeys:
        return cls(**{f.name: _derive(master_key, f.name.replace("_", "-")) for f in dataclasses.fields(cls)})
