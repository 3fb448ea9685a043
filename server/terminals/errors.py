"""Terminal-domain errors, each with a stable code."""

from server.errors import BadRequest, NotFound, PayloadTooLarge, Unauthorized, Unprocessable


class InvalidClient(Unauthorized):
    code, title = "terminal.invalid_client", "The client assertion is not valid"


class AssertionTime(InvalidClient):
    """Refused for its time alone: the terminal's clock is off. It may fetch the signed time without a token
    (GET /v1/terminal/public-time), correct its clock and sign in again."""

    code, title = "terminal.assertion_time", "The client assertion's exp is outside the accepted window"


class UnsupportedGrant(BadRequest):
    code, title = (
        "terminal.unsupported_grant_type",
        "Use grant_type=client_credentials with a JWT client assertion",
    )


class TerminalNotFound(NotFound):
    code, title = "terminal.not_found", "No such terminal"


class TerminalKeyInvalid(Unprocessable):
    code, title = (
        "terminal.public_key_invalid",
        "public_key must be a valid raw Ed25519 public key in unpadded base64url",
    )


class PolicyInvalid(Unprocessable):
    code, title = "policy.invalid", "The scene policy is not valid"


class BatchTooLarge(PayloadTooLarge):
    code, title = "scan.batch_too_large", "Too many records in one batch"


class EnrolmentCodeInvalid(BadRequest):
    """Unknown, used or expired: one answer for all three, so trying codes tells nothing about any of them."""

    code, title = (
        "terminal.enrolment_code_invalid",
        "This enrolment code is unknown, used or expired; ask the operator for a new one",
    )
