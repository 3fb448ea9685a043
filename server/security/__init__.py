"""Secrets at rest: the master key, the keys derived from it per purpose, field encryption (AES-GCM) and keyed
blind indexes."""

from server.security.derived import DerivedKeys
from server.security.fields import FieldCipher
from server.security.master_key import MasterKeyError, load_master_key

__all__ = ["DerivedKeys", "FieldCipher", "MasterKeyError", "load_master_key"]
