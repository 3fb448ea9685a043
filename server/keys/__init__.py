"""Signing keys: Ed25519 key pairs per purpose, private halves encrypted at rest, rotation and retirement."""
