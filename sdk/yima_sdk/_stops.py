"""Where a terminal scans: a stop id, as fare tables name stops (`yima_sdk.fares`), and which tap a scan is."""

from __future__ import annotations

import re
from typing import Final, Literal

__all__ = ["STOP_PATTERN", "Tap", "valid_stop"]

STOP_PATTERN: Final = r"^[A-Za-z0-9_.:-]{1,64}$"
"""A stop: an ASCII id of 1-64 letters, digits, `_`, `.`, `:` or `-` (`people-square`)."""
_STOP = re.compile(STOP_PATTERN)

Tap = Literal["on", "off"]
"""Which tap a scan is: `on` boarding (or entering: every scan before taps existed), `off` getting off."""


def valid_stop(stop: str) -> bool:
    return _STOP.fullmatch(stop) is not None
