"""How a domain plugin hands its service to the plugins that need it: typed, explicit, whatever the plugin order.

A domain that needs another's service declares a Protocol of what it needs (its port) and takes, in its plugin's
constructor, a `Provides[ThatProtocol]`: the providing domain's plugin, wired in `server/app.py`. At start-up it
awaits `provider.started(app)`, which starts the provider first if its own start-up hook has not run yet, so the
order of `create_app`'s list does not matter, and mypy checks that the provider's service answers the port.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from litestar import Litestar

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Provides(Protocol[T_co]):
    """A plugin whose started service other plugins use."""

    async def started(self, app: Litestar) -> T_co:
        """The plugin's service for `app`, started now if it was not yet."""
        ...


class StartOnce(Generic[T]):
    """A plugin's start-up, run once per start of the app: by its own hook or by the first plugin needing it."""

    def __init__(self, start: Callable[[Litestar], Awaitable[T]]) -> None:
        self._start = start
        self._value: T | None = None
        self._starting = False

    async def __call__(self, app: Litestar) -> T:
        if self._value is None:
            if self._starting:
                raise RuntimeError("plugins need each other's services at start-up: a cycle")
            self._starting = True
            try:
                self._value = await self._start(app)
            finally:
                self._starting = False
        return self._value

    def reset(self) -> None:
        """Forget the service (at shutdown), so a restarted app starts a fresh one."""
        self._value = None
