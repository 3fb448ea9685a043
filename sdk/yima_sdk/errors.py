"""The yima_sdk exception tree: every error a mini-app can see carries a stable machine `code`.

    YimaError                      code "yima.error"         base; catch this to catch everything below
    ├── CapabilityDenied           "capability.denied"       capability not declared in miniapp.toml, or refused
    ├── ConsentDenied              "consent.denied"          the resident has not granted (or revoked) the scope
    ├── QuotaExceeded              "quota.exceeded"          a storage, counter or call quota is used up
    ├── CapabilityFailed           "capability.failed"       the platform could not serve the request (transient)
    ├── RouteNotFound              "route.not_found"         no handler for this path / scene
    ├── ManifestError              "manifest.invalid"        miniapp.toml does not validate (names the field)
    ├── InvalidArgument            "capability.invalid_argument"  a capability op got a bad argument
    ├── VersionConflict            "storage.version_conflict"     put/delete with a stale `expected_version`
    ├── CounterOutOfRange          "storage.counter_out_of_range" counter_add would leave [min, max]; unchanged
    ├── PaymentFailed              "payment.failed"          the one-card refused the charge (balance, frozen card)
    ├── PaymentDeclined            "payment.declined"        the resident declined to confirm the charge
    ├── PackError                  "pack.invalid"            the app folder cannot be packed (size, symlink...)
    └── PublishError               "publish.failed"          the developer API refused the upload (code from it)

Errors travel over the sandbox bridge as (code, message); `error_for_code` turns them back into the right class
so an app can write `except ConsentDenied:` whatever process raised it.
"""

from __future__ import annotations

__all__ = [
    "CapabilityDenied",
    "CapabilityFailed",
    "ConsentDenied",
    "CounterOutOfRange",
    "InvalidArgument",
    "ManifestError",
    "PackError",
    "PaymentDeclined",
    "PaymentFailed",
    "PublishError",
    "QuotaExceeded",
    "RouteNotFound",
    "VersionConflict",
    "YimaError",
    "error_for_code",
]


class YimaError(Exception):
    """Base of every SDK error; `code` is stable and machine-readable, the message is for humans."""

    code: str = "yima.error"

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


class ConsentDenied(YimaError):
    """The resident did not consent to the data scope this request needs."""

    code = "consent.denied"


class QuotaExceeded(YimaError):
    """A quota (storage size, counter bound, call rate) is used up."""

    code = "quota.exceeded"


class CapabilityFailed(YimaError):
    """The platform side of a capability failed; retrying later may work."""

    code = "capability.failed"


class RouteNotFound(YimaError):
    """No handler matches the request path or scan scene."""

    code = "route.not_found"


class ManifestError(YimaError):
    """miniapp.toml is missing, unreadable or invalid; the message names the offending field."""

    code = "manifest.invalid"


class InvalidArgument(YimaError):
    """A capability operation got an argument it cannot accept (wrong type, too long, unknown scope name)."""

    code = "capability.invalid_argument"


class VersionConflict(YimaError):
    """`storage.put`/`delete` with an `expected_version` that is no longer current: re-read and retry."""

    code = "storage.version_conflict"


class CounterOutOfRange(YimaError):
    """`storage.counter_add` would take the counter outside its [min, max]; the counter is unchanged."""

    code = "storage.counter_out_of_range"


class PaymentFailed(YimaError):
    """The one-card refused the charge (insufficient balance, frozen card, provider down); nothing was charged."""

    code = "payment.failed"


class PaymentDeclined(YimaError):
    """The resident declined to confirm the charge; nothing was charged."""

    code = "payment.declined"


class PackError(YimaError):
    """The app folder cannot be packed: too large, too many files, a symlink, no manifest."""

    code = "pack.invalid"


class PublishError(YimaError):
    """The developer API refused or failed the upload; `code` is the API's own (e.g. `registry.not_owner`)."""

    code = "publish.failed"


_BY_CODE: dict[str, type[YimaError]] = {
    cls.code: cls
    for cls in (
        CapabilityDenied,
        ConsentDenied,
        QuotaExceeded,
        CapabilityFailed,
        RouteNotFound,
        ManifestError,
        InvalidArgument,
        VersionConflict,
        CounterOutOfRange,
        PaymentFailed,
        PaymentDeclined,
    )
}


def error_for_code(code: str, message: str) -> YimaError:
    """Rebuild the matching exception from a (code, message) pair received over the wire."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return YimaError(message, code=code)
    return cls(message)
