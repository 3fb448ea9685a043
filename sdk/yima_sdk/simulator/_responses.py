"""SimResponse, and the simulator's JSON and problem+json answers, shared by its HTTP front (_http) and the shell pages (_pages).

A problem body carries what the real server's does (server/errors.py `Problem`): type, title, status, code and
the detail; `status` repeats the HTTP status, as RFC 9457 allows, so a client reading only the body sees it.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import msgspec

PROBLEM_JSON = "application/problem+json"


class SimResponse(msgspec.Struct, frozen=True):
    """An HTTP answer of the simulated app."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return msgspec.json.decode(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def json_response(value: Any, status: int = 200) -> SimResponse:
    return SimResponse(status, {"content-type": "application/json"}, msgspec.json.encode(value))


def problem(
    status: int, code: str, detail: str | None = None, *, title: str | None = None, **extra: Any
) -> SimResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or _phrase(status),
        "status": status,
        "code": code,
    }
    if detail is not None:
        body["detail"] = detail
    body.update(extra)
    return SimResponse(status, {"content-type": PROBLEM_JSON}, msgspec.json.encode(body))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
