"""The host side of capabilities: the `CapabilityProvider` interface the server implements, and a tiny
in-memory provider for the host's own tests. Every provider decodes requests into the operation Structs of
the SDK's capability contract (`yima_sdk.contract.decode_operation`).

The host has already checked the manifest before a provider sees a request, so providers decide only
platform rules (consent, quotas, namespacing). They refuse by raising a yima_sdk error (ConsentDenied,
QuotaExceeded, CapabilityDenied...), whose code reaches the app as the matching exception.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec
from yima_sdk import contract as c
from yima_sdk.errors import CapabilityDenied, QuotaExceeded

__all__ = ["CallInfo", "CapabilityProvider", "InMemoryCapabilityProvider"]


class CallInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Who is asking: the app version and the call (with its app-scoped user id) a request belongs to."""

    app_id: str
    version: str
    call_id: int
    user_id: str | None = None


class CapabilityProvider(Protocol):
    async def handle(
        self, call: CallInfo, capability: str, operation: str, args: list[Any], kwargs: dict[str, Any]
    ) -> Any:
        """Serve one declared capability request; return a msgpack-able value or raise a yima_sdk error."""
        ...


class InMemoryCapabilityProvider:
    """A test double for the host's own tests: `storage.get` / `storage.put` in memory (namespaced per app, with
    a per-app key quota) and `notify.send` to an outbox. It decodes the SDK's contract Structs like every
    provider; any other operation is refused with `capability.denied` (the platform's provider serves them)."""

    def __init__(self, storage_quota: int = 1000) -> None:
        self.storage: dict[str, dict[str, Any]] = {}
        self.outbox: list[tuple[str, str | None, c.NotifySend]] = []
        self.storage_quota = storage_quota

    async def handle(
        self, call: CallInfo, capability: str, operation: str, args: list[Any], kwargs: dict[str, Any]
    ) -> Any:
        op = c.decode_operation(capability, operation, args, kwargs)
        space = self.storage.setdefault(call.app_id, {})
        match op:
            case c.StorageGet():
                return space.get(op.key)
            case c.StoragePut():
                if op.key not in space and len(space) >= self.storage_quota:
                    raise QuotaExceeded(f"storage holds at most {self.storage_quota} keys per app")
                space[op.key] = op.value
                return 1
            case c.NotifySend():
                self.outbox.append((call.app_id, call.user_id, op))
                return f"msg_{len(self.outbox)}"
        raise CapabilityDenied(f"{c.operation_name(op)} is not offered by this test provider")
