"""The event loops the server meets: uvloop (what uvicorn picks by default, so what `yima dev` and `yima serve`
run on) and plain asyncio (what most tools use). The two loops hand protocols different transport classes, and
only one of them used to work, so the tests of code that talks to sandbox workers over the bridge (the host's
own tests, the gateway's, a worker that fails to start) run on each: modules marked `both_loops`. The other
tests in tests/sandbox and tests/platform exercise what the worker does, not the loop, and run once, on uvloop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest
import uvloop

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

# uvloop first: pytest groups tests by the loop they run on, and every switch of loop starts a new session database
LOOPS: Mapping[str, LoopFactory] = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}
SERVER_LOOP: Mapping[str, LoopFactory] = {"uvloop": uvloop.new_event_loop}


def loops_for(config: pytest.Config, item: pytest.Item) -> Mapping[str, LoopFactory]:
    """Body of a conftest's `pytest_asyncio_loop_factories` hook: both loops for a test marked `both_loops`,
    the server's loop for the others."""
    return LOOPS if item.get_closest_marker("both_loops") else SERVER_LOOP
