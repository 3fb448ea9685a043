"""The roles an account can hold, who may grant each (separation of duties); every route names the ones it admits.

| role | granted and revoked by |
|---|---|
| administrator | the `yima admin grant` command on the server machine only |
| operator, health_authority | an administrator |
| every other role | an operator or an administrator |

Nobody grants or revokes a role of their own account.
"""

import enum


class Role(enum.StrEnum):
    RESIDENT = "resident"
    GRID_WORKER = "grid_worker"
    CLINIC_STAFF = "clinic_staff"
    PHARMACIST = "pharmacist"
    BUS_OPERATOR = "bus_operator"
    SCENIC_STAFF = "scenic_staff"
    HEALTH_AUTHORITY = "health_authority"
    DEVELOPER = "developer"
    OPERATOR = "operator"
    ADMINISTRATOR = "administrator"


PRIVILEGED = frozenset({Role.OPERATOR, Role.HEALTH_AUTHORITY})
"""Roles only an administrator grants: an operator must not make operators (or itself one again)."""


def granted_by(role: Role) -> frozenset[Role]:
    """The roles, one of which an account needs to grant or revoke `role` (empty: no account may)."""
    if role is Role.ADMINISTRATOR:
        return frozenset()
    if role in PRIVILEGED:
        return frozenset({Role.ADMINISTRATOR})
    return frozenset({Role.OPERATOR, Role.ADMINISTRATOR})
