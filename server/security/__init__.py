"""Secrets at rest: the master key, field encryption (AES-GCM) and keyed blind indexes."""

from server.security.fields import FieldCipher
from server.security.master_key import MasterKeyError, load_master_key

__all__ = ["FieldCipher", "MasterKeyError", "load_master_key"]
