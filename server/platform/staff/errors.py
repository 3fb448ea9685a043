"""Staff errors with stable codes: `staff.*` for grants, `miniapp.staff_required` at the gateway."""

from __future__ import annotations

from server.errors import Conflict, Forbidden, NotFound, Unprocessable


class UnknownRole(Unprocessable):
    code, title = "staff.unknown_role", "The app does not declare this staff role under [staff.roles]"


class UnknownUnit(Unprocessable):
    code, title = "staff.unknown_unit", "The app does not declare this unit's kind under [staff.units]"


class UnknownAccount(NotFound):
    code, title = "staff.unknown_account", "No such account"


class NotAllowed(Forbidden):
    code, title = (
        "staff.not_allowed",
        "Only an operator, or the app's admin at this unit, grants and revokes this role (never your own)",
    )


class AlreadyGranted(Conflict):
    code, title = "staff.already_granted", "The account holds this role at this unit already"


class NotGranted(NotFound):
    code, title = "staff.not_granted", "The account does not hold this role at this unit"


class StaffRequired(Forbidden):
    code, title = "miniapp.staff_required", "This route is for the app's staff holding a role you do not hold"
