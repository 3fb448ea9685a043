"""The yima_sdk exception tree: every error a mini-app can see carries a stable machine `code` and the HTTP
`status` a caller sees when the app lets it escape (stated here once; the gateway and the simulator read it).

    YimaError                  502 "yima.error"                    base; catch this to catch everything below
    ├── CapabilityDenied       403 "capability.denied"             not declared in miniapp.toml, or refused
    ├── ConsentDenied          403 "consent.denied"                the resident has not granted (or revoked) it
    ├── QuotaExceeded          429 "quota.exceeded"                a storage, message or call quota is used up
    ├── CapabilityFailed       503 "capability.failed"             the platform could not serve it (transient)
    ├── RouteNotFound          404 "route.not_found"               no handler for this path / scene
    ├── ManifestError          422 "manifest.invalid"              miniapp.toml does not validate (names the field)
    ├── InvalidArgument        400 "capability.invalid_argument"   a capability op got a bad argument
    ├── VersionConflict        409 "storage.version_conflict"      put/delete with a stale `expected_version`
    ├── CounterOutOfRange      409 "storage.counter_out_of_range"  counter_add would leave [min, max]; unchanged
    ├── NotIndexed             400 "db.not_indexed"                a ctx.db query no declared index answers
    ├── PaymentFailed          402 "payment.failed"                the one-card refused the charge
    ├── PaymentDeclined        402 "payment.declined"              the resident declined to confirm the charge
    ├── InvalidRequest         400 "request.invalid"               `request.json(Type)` refused the body (names the field)
    ├── BadScanReply           502 "miniapp.bad_scan_reply"        a scan handler answered outside the contract
    ├── PackError              400 "pack.invalid"                  the app folder cannot be packed (size, symlink)
    └── PublishError           502 "publish.failed"                the developer API refused the upload

Errors travel over the sandbox bridge as (code, message); `error_for_code` turns them back into the right class
so an app can write `except ConsentDenied:` whatever process raised it, and `status_for_code` gives the HTTP
status of a code (502 for a code no class here carries: the app failed).
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "APP_ERRORS",
    "APP_FAILED",
    "SANDBOX_FAILURES",
    "BadScanReply",
    "CapabilityDenied",
    "CapabilityFailed",
    "ConsentDenied",
    "CounterOutOfRange",
    "InvalidArgument",
    "InvalidRequest",
    "ManifestError",
    "NotIndexed",
    "PackError",
    "PaymentDeclined",
    "PaymentFailed",
    "PublishError",
    "QuotaExceeded",
    "RouteNotFound",
    "VersionConflict",
    "YimaError",
    "error_for_code",
    "gateway_answer",
    "status_for_code",
]


class YimaError(Exception):
    """Base of every SDK error; `code` is stable and machine-readable, the message is for humans."""

    code: str = "yima.error"
    status: ClassVar[int] = 502
    """The HTTP status a caller of the app sees when the app does not catch this error."""

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class CapabilityDenied(YimaError):
    """The app asked for a capability its manifest does not declare, or the platform refused it."""

    code = "capability.denied"
    status = 403


class ConsentDenied(YimaError):
    """The resident did not consent to the data scope this request needs."""

    code = "consent.denied"
    status = 403


class QuotaExceeded(YimaError):
    """A quota (storage size, counter bound, call rate) is used up."""

    code = "quota.exceeded"
    status = 429


class CapabilityFailed(YimaError):
    """The platform side of a capability failed; retrying later may work."""

    code = "capability.failed"
    status = 503


class RouteNotFound(YimaError):
    """No handler matches the request path or scan scene."""

    code = "route.not_found"
    status = 404


class ManifestError(YimaError):
    """miniapp.toml is missing, unreadable or invalid; the message names the offending field."""

    code = "manifest.invalid"
    status = 422


class InvalidArgument(YimaError):
    """A capability operation got an argument it cannot accept (wrong type, too long, unknown scope name)."""

    code = "capability.invalid_argument"
    status = 400


class VersionConflict(YimaError):
    """`storage.put`/`delete` with an `expected_version` that is no longer current: re-read and retry."""

    code = "storage.version_conflict"
    status = 409


class CounterOutOfRange(YimaError):
    """`storage.counter_add` would take the counter outside its [min, max]; the counter is unchanged."""

    code = "storage.counter_out_of_range"
    status = 409


class NotIndexed(YimaError):
    """A `ctx.db` query on a collection or field that miniapp.toml's [collections] does not declare as indexed
    (or ordered in a way no declared index answers); the message names the declared indexes."""

    code = "db.not_indexed"
    status = 400


class PaymentFailed(YimaError):
    """The one-card refused the charge (insufficient balance, frozen card, provider down); nothing was charged."""

    code = "payment.failed"
    status = 402


class PaymentDeclined(YimaError):
    """The resident declined to confirm the charge; nothing was charged."""

    code = "payment.declined"
    status = 402


class InvalidRequest(YimaError):
    """The request body does not decode as the type the handler asked for (`request.json(MyStruct)`); the
    message names the field. Uncaught, the caller gets 400 with this code."""

    code = "request.invalid"
    status = 400


class BadScanReply(YimaError):
    """A scan handler answered something other than None or `{"lines": [...]}` (at most 4 strings of at most
    40 characters): the terminal shows the scan without the app's part, and the app's log says why."""

    code = "miniapp.bad_scan_reply"


class PackError(YimaError):
    """The app folder cannot be packed: too large, too many files, a symlink, no manifest."""

    code = "pack.invalid"
    status = 400


class PublishError(YimaError):
    """The developer API refused or failed the upload; `code` is the API's own (e.g. `registry.not_owner`)."""

    code = "publish.failed"
    status = 502


APP_ERRORS: tuple[type[YimaError], ...] = (
    CapabilityDenied,
    ConsentDenied,
    QuotaExceeded,
    CapabilityFailed,
    RouteNotFound,
    InvalidArgument,
    VersionConflict,
    CounterOutOfRange,
    PaymentFailed,
    PaymentDeclined,
    InvalidRequest,
    NotIndexed,
)
"""The errors a mini-app's handler can let escape to its caller, each answered with its own status and code."""

_KNOWN: tuple[type[YimaError], ...] = (*APP_ERRORS, ManifestError, BadScanReply)
_BY_CODE: dict[str, type[YimaError]] = {cls.code: cls for cls in _KNOWN}


def error_for_code(code: str, message: str) -> YimaError:
    """Rebuild the matching exception from a (code, message) pair received over the wire."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return YimaError(message, code=code)
    return cls(message)


def status_for_code(code: str) -> int:
    """The HTTP status of an app error with this code (an uncaught SDK error), 502 for any other code."""
    cls = _BY_CODE.get(code)
    return YimaError.status if cls is None else cls.status


# How a sandbox failure reaches the resident, in the production gateway and in the simulator alike: the
# platform's own trouble (busy, late, crashed) is 5xx and says whose fault it was; an SDK error the app did
# not catch keeps its code and its class's status (see `gateway_answer`).
SANDBOX_FAILURES: dict[str, tuple[int, str, str]] = {
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
"""Sandbox (worker) failure code -> (HTTP status, code the resident sees, title)."""

APP_FAILED: tuple[int, str, str] = (502, "miniapp.failed", "The mini-app failed")
"""Any other failure (the app's own uncaught exception, `miniapp.error`)."""


def gateway_answer(code: str) -> tuple[int, str, str]:
    """(status, code, title) the gateway answers for a call that failed with `code`."""
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls.status, code, (cls.__doc__ or "The mini-app failed").strip().splitlines()[0]
    return SANDBOX_FAILURES.get(code, APP_FAILED)
