"""Platform errors with stable codes, and how sandbox and mini-app failures become problem+json answers.

registry.*   developer tokens, uploads (403 registry.not_owner, 409 registry.version_exists ...)
app_id.*     registrations of app ids (server/platform/app_ids/errors.py: 403 app_id.not_registered ...)
release.*    review and release transitions (409 release.percentage_decrease, release.not_approved ...)
miniapp.*    the gateway: unavailable or suspended apps, quotas, size limits, staff-only routes, the app's own failures
consent.*    scopes the resident has not granted
payment.*    pending mini-app payments the resident confirms
pass.*       an app's own pass the shell shows its page's resident (yima.showPass)
"""

from __future__ import annotations

from yima_sdk.errors import APP_ERRORS, APP_FAILED, SANDBOX_FAILURES, gateway_answer

from sandbox.errors import SandboxError
from server.errors import (
    AppError,
    Conflict,
    ErrorCode,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
)
from server.platform.staff.errors import StaffRequired


class DeveloperTokenInvalid(Unauthorized):
    code, title = "registry.token_invalid", "Send a developer token: Authorization: Bearer ydt_..."


class NotOwner(Forbidden):
    code, title = "registry.not_owner", "This app id is registered to another organisation"


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


class PassInvalid(Unprocessable):
    code, title = (
        "pass.invalid",
        "Not a valid pass: malformed, not signed by the platform, expired or revoked",
    )


class PassNotFound(NotFound):
    code, title = "pass.not_found", "No such pass of this mini-app held by you"


class PaymentDecided(Conflict):
    code, title = "payment.already_decided", "This payment was already confirmed, declined or cancelled"


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
    StaffRequired,
    *(ErrorCode(*answer) for answer in (*SANDBOX_FAILURES.values(), APP_FAILED)),
    *(ErrorCode(cls.status, cls.code, _first_line(cls.__doc__)) for cls in APP_ERRORS),
)
"""What a call through the gateway can answer besides the app's own answers (the OpenAPI document lists them)."""


def from_sandbox(exc: SandboxError, app_id: str) -> AppError:
    status, code, title = gateway_answer(exc.code)  # the simulator answers the same
    err = AppError(title, code=code, extra={"app_id": app_id, "app_code": exc.code})
    err.status = status  # type: ignore[misc]
    err.title = title  # type: ignore[misc]
    if status in (429, 503):
        err.headers = {"Retry-After": str(getattr(exc, "retry_after_s", 1))}
    if 400 <= status < 500:
        # the app's deliberate refusal: its message says what (the scope to consent to, the field that is
        # wrong); the SDK's and the platform's messages name no resident
        err.detail = exc.message[:300]
    return err
