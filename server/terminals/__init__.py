"""Terminals: the registry, terminal tokens (RFC 7523), scene policies and the scan pipeline."""
