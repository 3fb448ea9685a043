"""Residents and staff accounts: phone OTP login, sessions, real-name identity, roles."""
