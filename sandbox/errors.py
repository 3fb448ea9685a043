"""Errors the sandbox host raises to its caller (the gateway), each with a stable machine code.

SandboxError              "sandbox.error"
├── AppBusy               "sandbox.busy"                the app's queue is full: try again shortly
├── CallerGone            "sandbox.caller_gone"         the caller went away while its call waited: it never ran
├── DeadlineExceeded      "sandbox.deadline_exceeded"   the call overran timeout_ms; the worker was replaced
├── CpuExceeded           "sandbox.cpu_exceeded"        the call used more than cpu_ms of CPU
├── WorkerCrashed         "sandbox.worker_crashed"      the worker died during the call; it is being replaced
├── ProtocolViolation     "sandbox.protocol_error"      the worker sent a malformed frame; it was killed
├── ResponseTooLarge      "sandbox.response_too_large"  the answer exceeded the frame limit
├── LayerMissing          "sandbox.layer_missing"       a required isolation layer is not in force here
├── AppUnavailable        "sandbox.app_unavailable"     the app failed to start (import error, bad entry)
├── UnknownApp            "sandbox.unknown_app"         no such app version is loaded
├── HostClosed            "sandbox.closed"              the host is shutting down
└── MiniAppError          code from the app             the app's handler raised (e.g. "miniapp.error",
                                                        "capability.denied" left uncaught, "miniapp.memory")
"""

from __future__ import annotations

__all__ = [
    "AppBusy",
    "AppUnavailable",
    "CallerGone",
    "CpuExceeded",
    "DeadlineExceeded",
    "HostClosed",
    "LayerMissing",
    "MiniAppError",
    "ProtocolViolation",
    "ResponseTooLarge",
    "SandboxError",
    "UnknownApp",
    "WorkerCrashed",
]


class SandboxError(Exception):
    code = "sandbox.error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class AppBusy(SandboxError):
    code = "sandbox.busy"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        """When the caller may expect a free worker (the gateway's Retry-After)."""


class CallerGone(SandboxError):
    """Raised to a call whose caller's `hung_up` returned while it waited for a worker (the gateway: its HTTP
    client disconnected); it left the queue and never ran. Nobody is left to read it but the metrics."""

    code = "sandbox.caller_gone"


class DeadlineExceeded(SandboxError):
    code = "sandbox.deadline_exceeded"


class CpuExceeded(SandboxError):
    code = "sandbox.cpu_exceeded"


class WorkerCrashed(SandboxError):
    code = "sandbox.worker_crashed"


class ProtocolViolation(SandboxError):
    code = "sandbox.protocol_error"


class ResponseTooLarge(SandboxError):
    code = "sandbox.response_too_large"


class LayerMissing(SandboxError):
    code = "sandbox.layer_missing"


class AppUnavailable(SandboxError):
    code = "sandbox.app_unavailable"


class UnknownApp(SandboxError):
    code = "sandbox.unknown_app"


class HostClosed(SandboxError):
    code = "sandbox.closed"


class MiniAppError(SandboxError):
    """The mini-app's own failure; `code` is whatever the worker reported."""

    code = "miniapp.error"
