"""The audit log: append-only, hash-chained records of every state change that matters."""

from server.audit.service import AuditBreak, append, verify_chain

__all__ = ["AuditBreak", "append", "verify_chain"]
