"""Sandbox host tests run on asyncio and on uvloop (tests/event_loops.py)."""

from __future__ import annotations

from tests.event_loops import both_loops as pytest_asyncio_loop_factories

__all__ = ["pytest_asyncio_loop_factories"]
