"""Error responses in the OpenAPI document: every route's failures as application/problem+json, by code.

Each route declares the errors of its own domain (`opt=... | raises(SomeError, ...)`, server/errors.py); this
plugin adds the ones every route of a kind can answer: bad input (400 `request.invalid`, `request.malformed`;
413 for a body too large) where the route takes input, and authentication (401) and authorisation (403) where it
is not public. It replaces the `{status_code, detail, extra}` 400 shape Litestar would document, which this API
never sends (server/errors.py renders every failure as problem+json).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute

from server.auth.guards import PUBLIC
from server.errors import (
    PROBLEM_JSON,
    BadRequest,
    ErrorCode,
    Forbidden,
    PayloadTooLarge,
    Problem,
    Unauthorized,
    problem_type,
)

# Raised by the same classes with another code (server/errors.py's handler, server/auth/): named here once.
INVALID_INPUT = (
    ErrorCode.of(BadRequest),
    ErrorCode(400, "request.malformed", "The body could not be decoded"),
    ErrorCode(400, "request.too_deep", "The body is nested too deeply"),
    ErrorCode(400, "request.value_refused", "A value in the request is out of range or not allowed"),
)
BODY_TOO_LARGE = (ErrorCode.of(PayloadTooLarge),)
NOT_AUTHENTICATED = (
    ErrorCode.of(Unauthorized),
    ErrorCode(401, "auth.token_invalid", "The access token is not valid"),
    ErrorCode(401, "auth.token_expired", "The access token has expired"),
    ErrorCode(401, "auth.session_ended", "This session has ended; log in again"),
)
NOT_ALLOWED = (ErrorCode.of(Forbidden),)

# What a handler may ask for that is not input from the client.
_NOT_INPUT = frozenset({"request", "state", "scope", "headers", "cookies", "socket", "body"})


def route_errors(handler: HTTPRouteHandler, route: HTTPRoute) -> list[ErrorCode]:
    """The errors `handler` on `route` can answer: the generic ones for its kind, then those it declares."""
    errors: list[ErrorCode] = []
    dependencies = handler.resolve_dependencies()
    inputs = [
        name
        for name in handler.parsed_fn_signature.parameters
        if name not in dependencies and name not in _NOT_INPUT
    ]
    if inputs or route.path_parameters:
        errors += INVALID_INPUT
    if "data" in inputs:
        errors += BODY_TOO_LARGE
    allowed = handler.opt.get("allow") or frozenset()
    if PUBLIC not in allowed:
        errors += NOT_AUTHENTICATED + NOT_ALLOWED
    for error in handler.opt.get("raises", ()):
        errors.append(
            ErrorCode(error[0].status, error[1], error[0].title)
            if isinstance(error, tuple)
            else ErrorCode.of(error)
        )
    return errors


def problem_responses(errors: Iterable[ErrorCode]) -> dict[int, ResponseSpec]:
    """One problem+json response per status, its codes in the description and one example per code."""
    by_status: dict[int, dict[str, ErrorCode]] = {}
    for error in errors:
        by_status.setdefault(error.status, {}).setdefault(error.code, error)
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_JSON,
            generate_examples=False,
            description="; ".join(f"`{e.code}`: {e.title}" for e in codes.values()),
            examples=[
                Example(summary=e.code, description=e.title, value=_example(e)) for e in codes.values()
            ],
        )
        for status, codes in sorted(by_status.items())
    }


def _example(error: ErrorCode) -> dict[str, Any]:
    return {
        "type": problem_type(error.code),
        "title": error.title,
        "status": error.status,
        "code": error.code,
    }


class ErrorResponsesPlugin(ReceiveRoutePlugin):
    """Documents each route's errors as it is registered (before the OpenAPI document is first built)."""

    def receive_route(self, route: BaseRoute) -> None:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                # Kept: a route's own description of a success it answers with pre-encoded bytes.
                handler.responses = {
                    **(handler.responses or {}),
                    **problem_responses(route_errors(handler, route)),
                }
