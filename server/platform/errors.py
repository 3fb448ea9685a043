"""Platform errors with stable codes, and how sandbox and mini-app failures become problem+json answers.

registry.*   developer tokens, uploads (403 registry.not_owner, 409 registry.version_exists ...)
release.*    review and release transitions (409 release.percentage_decrease, release.not_approved ...)
miniapp.*    the gateway: unavailable or suspended apps, quotas, size limits, the app's own failures
consent.*    scopes the resident has not granted
payment.*    pending mini-app payments the resident confirms
"""

from __future__ import annotations

from yima_sdk.errors import APP_ERRORS, YimaError, error_for_code, status_for_code

from sandbox.errors import SandboxError
from server.errors import (
    AppError,
    BadRequest,
    Conflict,
    ErrorCode,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    Unprocessable,
)


class DeveloperTokenInvalid(Unauthorized):
    code, title = "registry.token_invalid", "Send a developer token: Authorization: Bearer ydt_..."


class NotOwner(Forbidden):
    code, title = "registry.not_owner", "This app id is registered to another developer"


class VersionExists(Conflict):
    code, title = "registry.version_exists", "This version was already uploaded with different contents"


class ArchiveTooLarge(PayloadTooLarge):
    code, title = "registry.archive_too_large", "The archive is larger than 5 MiB"


class AppNotFound(NotFound):
    code, title = "miniapp.not_found", "No such mini-app"


class VersionNotFound(NotFound):
    code, title = "registry.version_not_found", "No such version of this mini-app"


class TokenNotFound(NotFound):
    code, title = "registry.token_not_found", "No such developer token"


class NotInReview(Conflict):
    code, title = "release.not_in_review", "Only a version in review can be approved or rejected"


class NotApproved(Conflict):
    code, title = "release.not_approved", "Only an approved version can be released"


class PercentageDecrease(Conflict):
    code, title = (
        "release.percentage_decrease",
        "A phased release only widens; revert the phased group instead",
    )


class NothingPhased(Conflict):
    code, title = "release.nothing_phased", "No phased release is in progress"


class NotRecent(Conflict):
    code, title = "release.not_recent", "Roll back only to one of the recent released versions"


class AppSuspended(Forbidden):
    code, title = "miniapp.suspended", "This mini-app is suspended"


class AppUnavailable(NotFound):
    code, title = "miniapp.unavailable", "This mini-app is not available to you"


class SceneKindNotSubscribed(Unprocessable):
    code, title = "release.scene_not_subscribed", "The app's manifest does not subscribe to this scene kind"


class UnknownScope(Unprocessable):
    code, title = "consent.unknown_scope", "The app does not ask for this scope"


class ConsentDenied(Forbidden):
    code, title = "consent.denied", "You have not granted this mini-app the data it needs"


class QuotaExceeded(TooManyRequests):
    """429 with `miniapp.quota_app` (the app's own rate) or `miniapp.quota_resident` (this resident's)."""


class RequestTooLarge(PayloadTooLarge):
    code, title = "miniapp.request_too_large", "The request body is too large for a mini-app"


class ResponseTooLarge(AppError):
    status, code, title = 502, "miniapp.response_too_large", "The mini-app's answer was too large"


class PaymentNotFound(NotFound):
    code, title = "payment.not_found", "No such pending payment"


class PaymentDecided(Conflict):
    code, title = "payment.already_decided", "This payment was already confirmed or declined"


class PaymentsUnavailable(Unavailable):
    code, title = "payment.unavailable", "One-card payments are not available on this server"


class InvalidQuery(BadRequest):
    code = "request.invalid"


# How a sandbox failure reaches the resident: the platform's own trouble (busy, late, crashed) is 5xx and says
# whose fault it was. An SDK error the app did not catch (consent.denied, storage.version_conflict ...) keeps
# its code and answers the HTTP status its class in yima_sdk.errors carries: stated once, there, and read the
# same way by the simulator.
_SANDBOX: dict[str, tuple[int, str, str]] = {
    "sandbox.busy": (503, "miniapp.busy", "The mini-app is busy; try again shortly"),
    "sandbox.deadline_exceeded": (504, "miniapp.timeout", "The mini-app did not answer in time"),
    "sandbox.cpu_exceeded": (504, "miniapp.cpu_exceeded", "The mini-app used too much CPU"),
    "sandbox.worker_crashed": (502, "miniapp.crashed", "The mini-app crashed while answering"),
    "sandbox.protocol_error": (502, "miniapp.crashed", "The mini-app broke the sandbox protocol"),
    "sandbox.response_too_large": (502, "miniapp.response_too_large", "The mini-app's answer was too large"),
    "sandbox.layer_missing": (503, "miniapp.unavailable_here", "The sandbox cannot run apps on this server"),
    "sandbox.app_unavailable": (503, "miniapp.failed_to_start", "The mini-app failed to start"),
    "sandbox.unknown_app": (503, "miniapp.not_loaded", "The mini-app is not loaded; try again"),
    "sandbox.closed": (503, "service.unavailable", "The server is shutting down"),
    "miniapp.memory": (502, "miniapp.memory", "The mini-app ran out of memory"),
    "miniapp.recursion": (502, "miniapp.failed", "The mini-app failed"),
}


_FAILED = (502, "miniapp.failed", "The mini-app failed")


def _first_line(doc: str | None) -> str:
    return (doc or "The mini-app failed").strip().splitlines()[0]


GATEWAY_ERRORS: tuple[type[AppError] | tuple[type[AppError], str] | ErrorCode, ...] = (
    AppNotFound,
    AppSuspended,
    AppUnavailable,
    RequestTooLarge,
    (QuotaExceeded, "miniapp.quota_app"),
    (QuotaExceeded, "miniapp.quota_resident"),
    ResponseTooLarge,
    *(ErrorCode(*answer) for answer in (*_SANDBOX.values(), _FAILED)),
    *(ErrorCode(cls.status, cls.code, _first_line(cls.__doc__)) for cls in APP_ERRORS),
)
"""What a call through the gateway can answer besides the app's own answers (the OpenAPI document lists them)."""


def from_sandbox(exc: SandboxError, app_id: str) -> AppError:
    sdk_error = error_for_code(exc.code, exc.message)
    if type(sdk_error) is not YimaError:
        status, code, title = status_for_code(exc.code), exc.code, _first_line(type(sdk_error).__doc__)
    else:
        status, code, title = _SANDBOX.get(exc.code, _FAILED)
    err = AppError(title, code=code, extra={"app_id": app_id, "app_code": exc.code})
    err.status = status  # type: ignore[misc]
    err.title = title  # type: ignore[misc]
    if status in (429, 503):
        err.headers = {"Retry-After": "1"}
    if 400 <= status < 500:
        # the app's deliberate refusal: its message says what (the scope to consent to, the field that is
        # wrong); the SDK's and the platform's messages name no resident
        err.detail = exc.message[:300]
    return err
