"""Sandbox host tests run on uvloop, those marked `both_loops` on asyncio too (tests/event_loops.py)."""

from __future__ import annotations

from tests.event_loops import loops_for as pytest_asyncio_loop_factories

__all__ = ["pytest_asyncio_loop_factories"]
