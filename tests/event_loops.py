"""Both event loops the server meets: plain asyncio (what most tools use) and uvloop (what uvicorn picks by
default, so what `yima dev` and `yima serve` run on). Tests of code that talks to sandbox workers run on each:
the two loops hand protocols different transport classes, and only one of them used to work."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import uvloop

LOOPS: Mapping[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def both_loops(config: object, item: object) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Body of a conftest's `pytest_asyncio_loop_factories` hook: run its directory's tests on both loops."""
    return LOOPS
