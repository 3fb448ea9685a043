"""The host side of capabilities: the `CapabilityProvider` interface the server implements, and a tiny
in-memory provider for tests and the simulator.

The host has already checked the manifest before a provider sees a request, so providers decide only
platform rules (consent, quotas, namespacing). They refuse by raising a yima_sdk error (ConsentDenied,
QuotaExceeded, CapabilityDenied...), whose code reaches the app as the matching exception.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec
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
    """Storage namespaced per app (with a per-app key quota), user by app-scoped id, and a notify outbox."""

    def __init__(self, storage_quota: int = 1000) -> None:
        self.storage: dict[str, dict[str, Any]] = {}
        self.outbox: list[tuple[str, str | None, Any]] = []
        self.storage_quota = storage_quota

    async def handle(
        self, call: CallInfo, capability: str, operation: str, args: list[Any], kwargs: dict[str, Any]
    ) -> Any:
        match capability, operation:
            case "storage", "get":
                return self.storage.get(call.app_id, {}).get(_key(args, kwargs))
            case "storage", "put":
                space = self.storage.setdefault(call.app_id, {})
                key = _key(args, kwargs)
                if key not in space and len(space) >= self.storage_quota:
                    raise QuotaExceeded(f"storage holds at most {self.storage_quota} keys per app")
                space[key] = args[1] if len(args) > 1 else kwargs.get("value")
                return True
            case "user", "get":
                return {"user_id": call.user_id}
            case "notify", "send":
                self.outbox.append((call.app_id, call.user_id, args[0] if args else kwargs))
                return True
        raise CapabilityDenied(f"{capability}.{operation} is not offered by this platform")


def _key(args: list[Any], kwargs: dict[str, Any]) -> str:
    key = args[0] if args else kwargs.get("key")
    if not isinstance(key, str):
        raise CapabilityDenied("storage keys are strings")
    return key
