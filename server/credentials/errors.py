"""Credential-domain errors, each with a stable code."""

from server.errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable


class RealNameRequired(Forbidden):
    code, title = "identity.required", "Verify your real name before showing an Ankang code"


class PartnerKeyInvalid(Unprocessable):
    code, title = "trust_list.partner_key_invalid", "The partner issuer key is not acceptable"


class PartnerKeyConflict(Conflict):
    code, title = "trust_list.partner_key_conflict", "This issuer and key id belong to another key"


class PartnerKeyNotFound(NotFound):
    code, title = "trust_list.partner_key_not_found", "No such partner issuer key"


class AccountNotFound(NotFound):
    code, title = "account.not_found", "No such account"


class IdNumberInvalid(Unprocessable):
    code, title = "health.id_number_invalid", "The ID number is not valid"


class ImportInvalid(BadRequest):
    code, title = "health.import_invalid", "The import file cannot be read"
