"""The roles an account can hold; every route names the ones it admits."""

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
