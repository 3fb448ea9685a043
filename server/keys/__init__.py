"""Signing keys: Ed25519 key pairs per purpose, private halves encrypted at rest, rotation and retirement.

A kernel package: service.py (`KeyStore`, built by `CorePlugin`) and repository.py; no routes, so no controllers,
schemas or plugin (the `yima keys` commands are credentials', whose trust list publishes the keys)."""
