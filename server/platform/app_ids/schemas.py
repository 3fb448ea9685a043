"""Wire types of app id registrations and developer organisations."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from server.wire import Inbound, Outbound, whole

AppId = Annotated[
    str,
    msgspec.Meta(
        pattern=whole(r"[a-z][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+"),
        min_length=3,
        max_length=128,
        description="reverse-DNS, lower-case ASCII, at least two labels (as a manifest's `id`)",
        examples=["com.example.clinic"],
    ),
]
Namespace = Annotated[
    str,
    msgspec.Meta(
        pattern=whole(r"[a-z][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+"),
        min_length=3,
        max_length=100,
        description="reverse-DNS of a domain the organisation showed it controls; covers `<namespace>.*`",
        examples=["com.example"],
    ),
]
OrgName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Status = Literal["pending", "approved", "rejected"]


class OrgRequest(Inbound):
    name: OrgName
    namespace: Namespace
    members: Annotated[list[int], msgspec.Meta(max_length=100)] = []
    """Account ids of the organisation's developers (more can be added later)."""


class Org(Outbound):
    id: int
    name: str
    namespaces: list[str]
    members: list[int]


class RegistrationRequest(Inbound):
    app_id: AppId


class RegistrationDecision(Inbound):
    decision: Literal["approve", "reject"]
    reason: Reason


class Registration(Outbound):
    app_id: str
    org_id: int
    org_name: str
    status: Status
    requested_at: dt.datetime
    requested_by: int | None = None
    decided_at: dt.datetime | None = None
    reason: str = ""
