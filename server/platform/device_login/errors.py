"""Device login errors (`device.*`), shaped after RFC 8628's token endpoint errors with our stable codes."""

from __future__ import annotations

from server.errors import BadRequest, Conflict, Gone, NotFound, TooManyRequests


class AuthorizationPending(BadRequest):
    code, title = "device.authorization_pending", "The user code has not been confirmed yet; keep polling"


class SlowDown(TooManyRequests):
    code, title = "device.slow_down", "Polling too fast; wait the interval in Retry-After between polls"


class DeviceCodeInvalid(BadRequest):
    code, title = "device.code_invalid", "Unknown device code; start a new sign-in"


class DeviceCodeUsed(Conflict):
    code, title = "device.code_used", "This sign-in already handed out its token; start a new one"


class Expired(Gone):
    code, title = "device.expired", "This sign-in expired before it was completed; start a new one"


class UserCodeUnknown(NotFound):
    code, title = "device.user_code_unknown", "No sign-in is waiting for this code; check it, or start again"
