"""The base of every typed capability facade: the raw proxy of one declared capability, typed sends through it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from yima_sdk import contract as c


class _Facade:
    """Holds the raw proxy of one declared capability and sends typed requests through it."""

    __slots__ = ("_proxy",)

    def __init__(self, proxy: Any) -> None:
        self._proxy = proxy

    def _send(self, operation: str, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        send: Callable[..., Awaitable[Any]] = getattr(self._proxy, operation)
        return send(*args, **kwargs)

    async def _call(self, op: Any) -> Any:
        """Send one contract operation and convert the reply to its type."""
        operation = c.operation_name(op).partition(".")[2]
        return c.reply_of(op, await self._send(operation, **msgspec.structs.asdict(op)))

    if not TYPE_CHECKING:  # untyped access to operations newer than this SDK; hidden from type checkers

        def __getattr__(self, operation: str) -> Callable[..., Awaitable[Any]]:
            if operation.startswith("_"):
                raise AttributeError(operation)
            return getattr(self._proxy, operation)
