"""The audit log: append-only records of every state change that matters, MAC-chained, with signed checkpoints.

The domain's skeleton: controllers, service, repository, schemas, plugin (and cli, checkpoints, signing). No
errors.py: its routes answer only the kernel's errors (server/errors.py), and a broken chain is a result
(`AuditBreak`), not an error."""

from server.audit.service import AuditBreak, append, use_chain_key, verify_chain

__all__ = ["AuditBreak", "append", "use_chain_key", "verify_chain"]
