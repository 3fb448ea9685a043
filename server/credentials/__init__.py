"""Credentials: issuer keys, the signed trust list, dynamic Ankang codes, health status and revocation."""
