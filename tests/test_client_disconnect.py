"""A client that hangs up in the middle of sending its request is neither an unhandled error nor a 500 in metrics.

Driven at the ASGI boundary with the messages uvicorn sends when a phone loses its connection mid-upload: part of
the body, then `http.disconnect`.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import generate_latest


async def _hang_up_mid_body(app: Any, path: str) -> list[dict[str, Any]]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", b"64"),
        ],
        "client": ("203.0.113.77", 50000),
        "server": ("127.0.0.1", 8000),
    }
    messages = [
        {"type": "http.request", "body": b'{"phone": "1380', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_a_client_hanging_up_mid_body_is_logged_as_such_and_counted_499(
    client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        await _hang_up_mid_body(client.app, "/v1/auth/otp")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "client disconnected" in caplog.text
    exposition = generate_latest(client.app.state.core.metrics.registry).decode()
    otp = [
        line
        for line in exposition.splitlines()
        if 'route="/v1/auth/otp"' in line and "requests_total" in line
    ]
    assert any('status="499"' in line for line in otp), otp
    assert not any('status="500"' in line for line in otp), otp
