"""One-card errors, each with a stable code."""

from server.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized, Unavailable, Unprocessable


class CardNumberInvalid(Unprocessable):
    code, title = "onecard.card_number_invalid", "The social security card number is not valid"


class CardNotYours(Unprocessable):
    code, title = (
        "onecard.card_not_yours",
        "This is not the social security card issued to your verified identity",
    )


class CardTaken(Conflict):
    code, title = "onecard.card_taken", "This social security card is linked to another account"


class AlreadyOpen(Conflict):
    code, title = "onecard.already_open", "This account already has a one-card linked to another card"


class NotOpen(NotFound):
    code, title = "onecard.not_open", "Open a one-card account first"


class IdentityRequired(Forbidden):
    code, title = "identity.required", "Verify your real name first"


class AmountInvalid(Unprocessable):
    code, title = "onecard.amount_invalid", "The amount is not allowed"


class InsufficientBalance(Conflict):
    code, title = "onecard.insufficient_balance", "The balance does not cover this amount"


class ChargeNotFound(NotFound):
    code, title = "onecard.charge_not_found", "No such charge"


class RefundExceedsCharge(Conflict):
    code, title = "onecard.refund_exceeds_charge", "Refunds may not exceed what was charged"


class MonthInvalid(BadRequest):
    code, title = "onecard.month_invalid", "Give the month as YYYY-MM"


class DateInvalid(BadRequest):
    code, title = "onecard.date_invalid", "Give the date as YYYY-MM-DD"


class DeviceKeyInvalid(Unprocessable):
    code, title = (
        "onecard.device_key_invalid",
        "The device public key must be a valid raw Ed25519 public key, base64url unpadded",
    )


class TooManyDevices(Conflict):
    code, title = "onecard.too_many_devices", "Revoke a device before certifying another"


class InDebt(Conflict):
    code, title = "onecard.in_debt", "Top up to a balance of at least zero before certifying a device"


class DeviceNotFound(NotFound):
    code, title = "onecard.device_not_found", "No such device certificate"


class NotificationInvalid(Unauthorized):
    code, title = "payment.signature_invalid", "The payment notification is not validly signed"


class NotificationMalformed(BadRequest):
    code, title = "payment.notification_malformed", "The payment notification cannot be read"


class UnknownOrder(NotFound):
    code, title = "payment.unknown_order", "No such top-up order (yet)"


class ProviderUnavailable(Unavailable):
    code, title = "payment.provider_unavailable", "The payment provider is not answering; try again shortly"
