"""Identity and login errors."""

from server.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized, Unprocessable


class OtpInvalid(BadRequest):
    code, title = "auth.otp_invalid", "The code is wrong or has expired"


class OtpLocked(BadRequest):
    code, title = "auth.otp_locked", "Too many wrong tries; request a new code"


class RefreshInvalid(Unauthorized):
    code, title = "auth.refresh_invalid", "The refresh token is not valid"


class RefreshReused(Unauthorized):
    code, title = "auth.refresh_reused", "The refresh token was already used; the session has been ended"


class IdNumberInvalid(Unprocessable):
    code, title = "identity.id_number_invalid", "The ID number is not valid"


class NameInvalid(Unprocessable):
    code, title = "identity.name_invalid", "The name is not valid"


class IdNumberTaken(Conflict):
    code, title = "identity.id_number_taken", "This ID number belongs to another account"


class AlreadyVerified(Conflict):
    code, title = "identity.already_verified", "This account already has a different verified identity"


class IdentityRequired(Forbidden):
    code, title = "identity.required", "Verify your real name first"


class OwnRole(Forbidden):
    code, title = "role.own_account", "Nobody changes the roles of their own account"


class RoleNotYours(Forbidden):
    code, title = "role.not_allowed", "Your roles do not allow changing this role"


class AccountNotFound(NotFound):
    code, title = "account.not_found", "No such account"
