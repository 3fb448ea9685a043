"""Staff roles in the manifest: the roles an app's staff hold, the kinds of units they hold them at, and the
routes only staff may call.

    [staff.roles]                       # role = what holding it lets a person do (shown to whoever grants it)
    admin = "Grants this app's staff roles at their clinic"
    doctor = "Sees and calls the day's patients at their clinic"

    [staff.units]                       # unit kind = what one unit of this kind is
    clinic = "A clinic of the county hospital group"

    [staff.routes]                      # "METHOD /path" = the role a caller must hold (at any unit)
    "GET /patients/today" = "doctor"

A membership is (account, role, unit). A unit is `kind:id`, the kind declared under [staff.units] and the id
ASCII letters, digits, `.`, `_` or `-` (`clinic:guangde-people-1`); a role granted without a unit holds across
the app. The gateway refuses a call to a staff route from anyone without the role, before the app runs (403
`miniapp.staff_required`): the rule sits in the manifest, where reviewers read it and the platform enforces
it without trusting the app's code. The role `admin`, when declared, lets its holders grant the other roles.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated

import msgspec

__all__ = ["ROLE_PATTERN", "UNIT_PATTERN", "StaffTable", "route_role", "unit_kind"]

ROLE_PATTERN = r"^[a-z][a-z0-9_]{0,31}(?!\n)$"
"""A role or unit kind name: lower case, digits, `_`; 1-32 characters."""
UNIT_PATTERN = r"^[a-z][a-z0-9_]{0,31}:[A-Za-z0-9][A-Za-z0-9._-]{0,63}(?!\n)$"
"""A unit: `kind:id`, ASCII only (it travels in scan events, audit records and URLs)."""
ROUTE_PATTERN = r"^(GET|POST|PUT|DELETE|PATCH) /[!-~]*(?!\n)$"

RoleName = Annotated[str, msgspec.Meta(pattern=ROLE_PATTERN)]
Purpose = Annotated[str, msgspec.Meta(min_length=4, max_length=200)]
RouteKey = Annotated[str, msgspec.Meta(pattern=ROUTE_PATTERN, max_length=200)]

_PARAM = re.compile(r"\{([A-Za-z_]\w*)\}")


class StaffTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """`[staff]` of miniapp.toml: roles with their purpose, unit kinds, and routes that need a role."""

    roles: dict[RoleName, Purpose] = {}
    units: dict[RoleName, Purpose] = {}
    """Unit kinds (`clinic`, `pharmacy`, `bus_line`, `scenic_spot`, `grid`) -> what one unit of the kind is."""
    routes: dict[RouteKey, RoleName] = {}
    """`"METHOD /path/{param}"` (the app's own route template) -> the role a caller must hold."""

    def problems(self) -> list[str]:
        """What is inconsistent, as `field: message` lines (empty when the table is sound)."""
        found = []
        for route, role in self.routes.items():
            if role not in self.roles:
                found.append(f"staff.routes.{route}: role {role!r} is not declared under [staff.roles]")
        return found


def route_role(table: StaffTable, method: str, path: str) -> str | None:
    """The role a call of `method path` needs under `table`, None when anyone may call it. Paths match the
    templates as the app's router matches them (`{param}` is one path segment)."""
    method = method.upper()
    for route, role in table.routes.items():
        route_method, _, template = route.partition(" ")
        if route_method == method and _template(template).match(path):
            return role
    return None


def unit_kind(unit: str) -> str:
    """`clinic` of `clinic:guangde-people-1`."""
    return unit.partition(":")[0]


@functools.lru_cache(maxsize=1024)
def _template(template: str) -> re.Pattern[str]:
    parts = _PARAM.split(template)
    # split() alternates literal text and parameter names, as yima_sdk.App's router does
    regex = "".join(re.escape(p) if i % 2 == 0 else "[^/]+" for i, p in enumerate(parts))
    return re.compile(f"^{regex}$")
