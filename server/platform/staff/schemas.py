"""Wire types of staff grants."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from yima_sdk._staff import ROLE_PATTERN, UNIT_PATTERN

from server.params import INT64_MAX
from server.wire import Inbound, Outbound

RoleName = Annotated[str, msgspec.Meta(pattern=ROLE_PATTERN, description="a role under [staff.roles]")]
Unit = Annotated[
    str,
    msgspec.Meta(
        pattern=UNIT_PATTERN,
        description="`kind:id`, the kind under [staff.units], ASCII only (`clinic:guangde-people-1`)",
    ),
]


class StaffGrantRequest(Inbound):
    account_id: Annotated[int, msgspec.Meta(ge=1, le=INT64_MAX)]
    role: RoleName
    unit: Unit | None = None
    """Omitted: the role holds across the app, at every unit (only an operator or an app-wide admin grants it)."""


class StaffGrant(Outbound):
    app_id: str
    account_id: int
    role: str
    granted_at: dt.datetime
    granted_by: str
    """`account:<id>` of whoever granted it."""
    unit: str | None = None


class MyStaffRole(Outbound):
    """One of the caller's own memberships: what the console shows an app's admin."""

    app_id: str
    role: str
    granted_at: dt.datetime
    unit: str | None = None
    """None: the role holds across the app."""
