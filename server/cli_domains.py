"""Command groups contributed by domains: each entry adds a sub-command to `yima`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

COMMANDS: list[Callable[[Any], None]] = []


def _keys(sub: Any) -> None:
    from server.credentials.cli import register

    register(sub)


def _audit(sub: Any) -> None:
    from server.audit.cli import register

    register(sub)


def _onecard(sub: Any) -> None:
    from server.onecard.cli import register

    register(sub)


def _terminal(sub: Any) -> None:
    from server.terminals.cli import register

    register(sub)


COMMANDS += [_keys, _audit, _onecard, _terminal]
