"""Per-app structured logs with secrets scrubbed: mini-apps log through the `log` capability, the host logs
lifecycle events (start, crash, deadline, recycle); both go through `scrub` before being kept or emitted."""

from __future__ import annotations

import collections
import logging
import re
import time
from typing import Any

__all__ = ["AppLog", "scrub"]

_logger = logging.getLogger("yima.sandbox")

_SECRET_KEY = re.compile(
    r"secret|token|password|passwd|authorization|cookie|api_?key|private|master|"
    r"id_?number|phone|mobile",
    re.IGNORECASE,
)
# values that look like resident identity: 18-digit ID numbers (last char may be X), 11-digit mobile numbers,
# bearer tokens
_SECRET_VALUE = re.compile(r"\b\d{17}[\dXx]\b|\b1[3-9]\d{9}\b|(?i:bearer\s+)[\w.~+/=-]+")
_MAX_TEXT = 2000


def scrub(value: Any, _depth: int = 0) -> Any:
    """Mask secret-looking keys and identity-looking values, and bound sizes, recursively."""
    if _depth > 4:
        return "…"
    if isinstance(value, dict):
        return {
            str(k)[:100]: ("[redacted]" if _SECRET_KEY.search(str(k)) else scrub(v, _depth + 1))
            for k, v in list(value.items())[:50]
        }
    if isinstance(value, list | tuple):
        return [scrub(v, _depth + 1) for v in list(value)[:50]]
    if isinstance(value, str):
        return _SECRET_VALUE.sub("[redacted]", value[:_MAX_TEXT])
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if value is None or isinstance(value, bool | int | float):
        return value
    return scrub(repr(value), _depth + 1)


class AppLog:
    """The last `keep` records of one app version, also emitted on the `yima.sandbox` logger."""

    def __init__(self, app_key: str, keep: int = 500) -> None:
        self.app_key = app_key
        self.records: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)

    def write(self, level: str, event: str, source: str = "host", **fields: Any) -> None:
        record = {
            "ts": time.time(),
            "app": self.app_key,
            "source": source,
            "level": level,
            "event": scrub(event),
            **scrub(fields),
        }
        self.records.append(record)
        _logger.log(
            logging.getLevelName(level.upper()) if level.upper() in _LEVELS else logging.INFO,
            "%s %s",
            self.app_key,
            record["event"],
            extra={"sandbox": record},
        )


_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
