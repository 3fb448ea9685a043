"""The one error tree and the handler that renders every failure as problem+json with a stable code.

    AppError (status, code)
    ├── BadRequest          400 request.invalid, request.malformed ...
    ├── Unauthorized        401 auth.required, auth.token_invalid ...
    ├── Forbidden           403 auth.forbidden, identity.required ...
    ├── NotFound            404 *.not_found
    ├── Conflict            409 *.conflict, idempotency.key_reused ...
    ├── Gone                410
    ├── PayloadTooLarge     413 request.too_large
    ├── Unprocessable       422 domain rule failures (identity.id_number_invalid ...)
    ├── TooManyRequests     429 rate_limit.exceeded (with Retry-After)
    └── Unavailable         503 service.unavailable, service.db_busy, service.db_unavailable (with Retry-After)
        └── CacheUnavailable    503 service.cache_unavailable
    ClientClosedRequest 499 request.client_closed: never sent (the client has gone); counted in metrics as nginx does

Input the database refuses (a value out of a column's range, a NUL character in text, a reference to a row that
does not exist) and JSON nested deeper than the decoder recurses are the caller's fault: 400/422 with a code, never
a 500. Routes check what they can before the database does; these nets catch what slips past them.

A database connection lost in the middle of a request (PostgreSQL restarted, the network dropped) is answered
503 `service.db_unavailable`, not as a bug: its transaction did not commit (or, lost during COMMIT, may have),
and every write that may be retried is idempotent, so the client sends the request again.

Redis is the same: a route that cannot do without it (a replay claim, a code revocation's mark) answers 503
`service.cache_unavailable` with Retry-After while it is unreachable; the routes that can degrade do so
(docs/operations.md has the policy per use). Either outage is logged as one line per interval with a count.

Domain errors subclass one of these next to their service (server/<domain>/errors.py) and carry their own code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import asyncpg
import msgspec
import redis.exceptions
from litestar import Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import (
    RequestEntityTooLarge,
)  # not re-exported by litestar.exceptions

from server.observability import client_disconnected, outage_log, request_id_of

log = logging.getLogger("yima.errors")

PROBLEM_JSON = "application/problem+json"


class AppError(Exception):
    """Base of every error the API answers on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code is not None:
            self.code = code  # type: ignore[misc]
        self.extra = extra or {}
        self.headers = headers or {}


class BadRequest(AppError):
    status, code, title = 400, "request.invalid", "The request is not valid"


class Unauthorized(AppError):
    status, code, title = 401, "auth.required", "Authentication is required"


class Forbidden(AppError):
    status, code, title = 403, "auth.forbidden", "Not allowed"


class NotFound(AppError):
    status, code, title = 404, "request.not_found", "Not found"


class Conflict(AppError):
    status, code, title = 409, "request.conflict", "Conflict with the current state"


class Gone(AppError):
    status, code, title = 410, "request.gone", "No longer available"


class PayloadTooLarge(AppError):
    status, code, title = 413, "request.too_large", "The request body is too large"


class Unprocessable(AppError):
    status, code, title = 422, "request.unprocessable", "The request breaks a rule"


class TooManyRequests(AppError):
    status, code, title = 429, "rate_limit.exceeded", "Too many requests"

    def __init__(
        self, detail: str | None = None, *, retry_after_s: int = 60, code: str | None = None
    ) -> None:
        super().__init__(detail, code=code, headers={"Retry-After": str(max(1, retry_after_s))})


class Unavailable(AppError):
    """Every 503 says when to try again: clients and terminals send the request again after Retry-After instead of
    guessing (and all at once)."""

    status, code, title = 503, "service.unavailable", "Temporarily unavailable"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        retry_after_s: int = 1,
    ) -> None:
        super().__init__(
            detail,
            code=code,
            extra=extra,
            headers={"Retry-After": str(max(1, retry_after_s)), **(headers or {})},
        )


class CacheUnavailable(Unavailable):
    code, title = "service.cache_unavailable", "The shared cache is unreachable"

    def __init__(self, detail: str | None = None) -> None:
        # Two seconds: long enough for Redis to restart or fail over, short enough that a phone's retry is not felt.
        super().__init__(
            detail or "The shared cache could not be reached; send the request again", retry_after_s=2
        )


class ClientClosedRequest(AppError):
    status, code, title = 499, "request.client_closed", "The client closed the connection"


class Problem(msgspec.Struct, omit_defaults=True):
    """RFC 9457 problem document; `code` is the stable machine-readable part clients switch on."""

    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = None
    extra: dict[str, Any] | None = None


@dataclass(frozen=True)
class ErrorCode:
    """One answer a route can give: what the OpenAPI document lists for it."""

    status: int
    code: str
    title: str

    @classmethod
    def of(cls, error: type[AppError] | tuple[type[AppError], str] | ErrorCode) -> ErrorCode:
        if isinstance(error, ErrorCode):
            return error
        if isinstance(error, tuple):
            return cls(error[0].status, error[1], error[0].title)
        return cls(error.status, error.code, error.title)


def raises(*errors: type[AppError] | tuple[type[AppError], str] | ErrorCode) -> dict[str, Any]:
    """Route option naming the errors a route answers with beyond the generic ones (bad input, authentication),
    which server/openapi_errors.py adds by itself. The OpenAPI document lists them as problem+json by code.
    An error raised with another code than its class's is named as (class, code); one not raised as an AppError
    subclass at all as an ErrorCode.

        @post("/confirm", opt=allow(Role.DEVELOPER) | raises(UserCodeUnknown, Expired))
    """
    return {"raises": errors}


def problem_type(code: str) -> str:
    """The problem document's `type`: a URI per code (RFC 9457)."""
    return f"https://yima.guangde.gov.cn/problems/{code}"


def problem_response(request: Request[Any, Any, Any], error: AppError) -> Response[Problem]:
    body = Problem(
        type=problem_type(error.code),
        title=error.title,
        status=error.status,
        code=error.code,
        detail=error.detail,
        request_id=request_id_of(request.scope),
        extra=error.extra or None,
    )
    headers = error.headers
    if error.status == 503 and "Retry-After" not in headers:  # an error built by hand, not as an Unavailable
        headers = {**headers, "Retry-After": "1"}
    return Response(body, status_code=error.status, media_type=PROBLEM_JSON, headers=headers)


def _from_litestar(exc: HTTPException) -> AppError:
    detail = str(exc.detail)
    if isinstance(exc, RequestEntityTooLarge):
        return PayloadTooLarge()
    if isinstance(exc, ValidationException):
        errors = exc.extra if isinstance(exc.extra, list) else None
        invalid = BadRequest(_validation_detail(detail, errors))
        if errors:
            invalid.extra = {"errors": errors}
        return invalid
    if isinstance(exc, NotAuthorizedException):
        return Unauthorized(detail if detail != "Unauthorized" else None)
    if isinstance(exc, PermissionDeniedException):
        return Forbidden(detail if detail != "Forbidden" else None)
    if isinstance(exc, NotFoundException):
        return NotFound()
    if isinstance(exc, ClientException) and exc.status_code == 400:
        # Litestar raises a plain ClientException when the body cannot be decoded at all.
        return BadRequest(f"The body could not be decoded: {detail}", code="request.malformed")
    if isinstance(exc, MethodNotAllowedException):
        err = AppError("Method not allowed", code="request.method_not_allowed")
        err.status = 405  # type: ignore[misc]
        err.title = "Method not allowed"  # type: ignore[misc]
        return err
    generic = AppError(detail)
    generic.status = exc.status_code  # type: ignore[misc]
    generic.code = "request.invalid" if 400 <= exc.status_code < 500 else "internal"  # type: ignore[misc]
    generic.title = detail  # type: ignore[misc]
    return generic


def _validation_detail(detail: str, errors: list[Any] | None) -> str:
    if errors:
        messages = [
            f"{e['key']}: {e.get('message', '')}" if e.get("key") else str(e.get("message", ""))
            for e in errors
            if isinstance(e, dict)
        ]
        joined = "; ".join(m for m in messages if m)
        if joined:
            return joined
    return detail


_CONNECTION_LOST = (asyncpg.PostgresConnectionError, ConnectionError)


def _database_lost(exc: BaseException) -> bool:
    if isinstance(exc, _CONNECTION_LOST):
        return True
    # asyncpg's answer to a statement on a connection that has just died.
    return isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc)


def _refused_input(exc: BaseException) -> AppError | None:
    """The caller's input, refused by the decoder or the database: the 4xx it deserves, or None."""
    if isinstance(exc, RecursionError):
        return BadRequest("The body is nested too deeply", code="request.too_deep")
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return Unprocessable(
            "The request refers to something that does not exist", code="request.unknown_reference"
        )
    if isinstance(exc, asyncpg.DataError):
        # 22xxx: out of range, NUL in text, malformed value; or asyncpg refusing to encode an argument.
        return BadRequest(
            "A value in the request is out of range or not allowed", code="request.value_refused"
        )
    if isinstance(exc, OverflowError):
        return BadRequest("A number in the request is out of range", code="request.value_refused")
    return None


_CACHE_LOST = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def app_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    if isinstance(exc, CacheUnavailable):
        outage_log.failed("cache", type(exc.__cause__ or exc).__name__)
        return problem_response(request, exc)
    if isinstance(exc, AppError):
        return problem_response(request, exc)
    if client_disconnected(request.scope):
        # A phone losing its connection mid-upload: nothing to answer, and nothing wrong with the server.
        log.info(
            "client disconnected mid-request", extra={"error": type(exc).__name__, "path": request.url.path}
        )
        return problem_response(request, ClientClosedRequest())
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        return problem_response(request, _from_litestar(exc))
    refused = _refused_input(exc)
    if refused is not None:
        log.info(
            "input refused",
            extra={"request_id": request_id_of(request.scope), "error": type(exc).__name__},
        )
        return problem_response(request, refused)
    if isinstance(exc, _CACHE_LOST):
        # A Redis client used directly (the scan guard's) rather than through server.cache.
        outage_log.failed("cache", type(exc).__name__)
        return problem_response(request, CacheUnavailable())
    if _database_lost(exc):
        outage_log.failed("database", type(exc).__name__)
        return problem_response(
            request,
            Unavailable(
                "The database could not be reached; send the request again",
                code="service.db_unavailable",
            ),
        )
    # Anything else is a bug: log it with the request id, answer without internals.
    log.error(
        "unhandled error",
        exc_info=exc,
        extra={"request_id": request_id_of(request.scope), "path": request.url.path},
    )
    return problem_response(request, AppError("An unexpected error occurred; quote the request id"))


EXCEPTION_HANDLERS = {Exception: app_error_handler}
