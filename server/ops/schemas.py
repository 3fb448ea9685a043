"""What the operations routes answer."""

from __future__ import annotations

from server.wire import Outbound


class HealthReport(Outbound):
    status: str
    checks: dict[str, str]
