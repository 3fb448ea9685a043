"""Command groups contributed by domains: each entry adds a sub-command to `yima`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

COMMANDS: list[Callable[[Any], None]] = []
