"""The audit log: append-only records of every state change that matters, MAC-chained, with signed checkpoints."""

from server.audit.service import AuditBreak, append, use_chain_key, verify_chain

__all__ = ["AuditBreak", "append", "use_chain_key", "verify_chain"]
