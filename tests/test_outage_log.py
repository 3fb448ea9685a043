"""An outage is logged as one line per interval with a count, not one line per failed request."""

from __future__ import annotations

import logging

import pytest

from server.observability import OutageLog


def test_an_outage_logs_one_line_per_interval_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    outage = OutageLog(logging.getLogger("yima.outage.test"), interval_s=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="yima.outage.test"):
        for _ in range(1000):  # a burst of failed requests within one interval
            outage.failed("cache", "ConnectionError")
            now[0] += 0.005
        now[0] = 111.0
        outage.failed("cache", "ConnectionError")
        outage.failed("database", "ConnectionResetError")
    records = caplog.records
    assert [r.getMessage() for r in records] == [
        "cache unavailable",
        "cache unavailable",
        "database unavailable",
    ]
    assert [r.failures_since_last_line for r in records] == [1, 1000, 1]  # type: ignore[attr-defined]
