"""Per-app structured logs with secrets scrubbed: mini-apps log through the `log` capability (within a
`LogBudget`), the host logs lifecycle events (start, crash, deadline, recycle); both go through `scrub`
before being kept or emitted."""

from __future__ import annotations

import collections
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import msgspec

__all__ = ["AppLog", "LogBudget", "scrub"]

_msgpack = msgspec.msgpack.Encoder()

_logger = logging.getLogger("yima.sandbox")

_SECRET_KEY = re.compile(
    r"secret|token|password|passwd|authorization|cookie|api_?key|private|master|"
    r"id_?number|phone|mobile",
    re.IGNORECASE,
)
# values that look like resident identity or a credential, wherever they sit in a string: any run of 11 or
# more digits (Unicode digits too), spaces or dashes allowed between them and a final X (mobile numbers with or
# without +86, ID numbers, card numbers; glued to letters or not), bearer tokens and bare JWTs. Masking a long
# order number or a millisecond timestamp is the price of never keeping a phone number.
_SECRET_VALUE = re.compile(
    r"\d(?:[\s-]?\d){10,}(?:[\s-]?[Xx])?"
    r"|(?i:bearer\s+)[\w.~+/=-]+"
    r"|eyJ[\w-]*\.[\w-]+\.[\w-]*"
)
_MAX_TEXT = 2000


def scrub(value: Any, _depth: int = 0) -> Any:
    """Mask secret-looking keys and identity-looking values, and bound sizes, recursively."""
    if _depth > 4:
        return "…"
    if isinstance(value, dict):
        return {
            _SECRET_VALUE.sub("[redacted]", str(k)[:100]): (
                "[redacted]" if _SECRET_KEY.search(str(k)) else scrub(v, _depth + 1)
            )
            for k, v in list(value.items())[:50]
        }
    if isinstance(value, list | tuple):
        return [scrub(v, _depth + 1) for v in list(value)[:50]]
    if isinstance(value, str):
        return _SECRET_VALUE.sub("[redacted]", value[:_MAX_TEXT])
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) >= 10**10:
        return "[redacted]"  # a phone or card number sent as a number
    if value is None or isinstance(value, bool | int | float):
        return value
    return scrub(repr(value), _depth + 1)


_RESERVED = frozenset({"ts", "app", "source", "level", "event"})


class AppLog:
    """The last `keep` records of one app version, also emitted on the `yima.sandbox` logger."""

    def __init__(self, app_key: str, keep: int = 500) -> None:
        self.app_key = app_key
        self.records: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)

    def write(self, level: str, event: str, source: str = "host", **fields: Any) -> None:
        self.add(level, event, source, fields)

    def add(self, level: str, event: str, source: str, fields: dict[str, Any]) -> None:
        """Keep one record; `fields` may come from an app, under any names."""
        # the record's own fields always win: an app's `app=` or `ts=` is kept, renamed, never in their place
        extra = {(f"arg_{k}" if k in _RESERVED else k): v for k, v in scrub(fields).items()}
        record = {
            **extra,
            "ts": time.time(),
            "app": self.app_key,
            "source": source,
            "level": level,
            "event": scrub(event),
        }
        self.records.append(record)
        _logger.log(
            logging.getLevelName(level.upper()) if level.upper() in _LEVELS else logging.INFO,
            "%s %s",
            self.app_key,
            record["event"],
            extra={"sandbox": record},
        )


class LogBudget:
    """How much one app version may log: records per minute (all its workers) and bytes per record.

    `ctx.log` is served by the host, so an unbounded one is the host's CPU and the operators' disk (one call
    wrote 122 MB). Over the rate, records are dropped and counted; an oversized record keeps its event and
    level but not its fields."""

    def __init__(self, per_minute: int, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.max_bytes = max_bytes
        self.clock = clock
        self._window = -1
        self._used = 0

    def allow(self) -> bool:
        window = int(self.clock() // 60)
        if window != self._window:
            self._window, self._used = window, 0
        self._used += 1
        return self._used <= self.per_minute

    def fields(self, event: str, fields: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The event and fields to keep: as they are, or cut to their size when over the record limit."""
        size = len(event) + len(_msgpack.encode(fields))
        if size <= self.max_bytes:
            return event, fields
        return event[:200], {"oversized_bytes": size}


_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
