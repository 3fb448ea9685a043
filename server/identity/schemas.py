"""Wire types for login, profile and identity."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from server.auth.roles import Role
from server.wire import Inbound, Outbound, Phone, whole


class OtpRequest(Inbound):
    phone: Phone


class OtpAccepted(Outbound):
    status: Literal["sent"]
    expires_in: int
    """Seconds the code stays valid, if it was sent."""


class TokenRequest(Inbound):
    phone: Phone
    code: Annotated[str, msgspec.Meta(pattern=whole("[0-9]{6}"), description="The 6-digit code from the SMS")]


class RefreshRequest(Inbound):
    refresh_token: Annotated[str, msgspec.Meta(min_length=20, max_length=200)]


class TokenResponse(Outbound):
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret


class IdentityRequest(Inbound):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=60)]
    id_number: Annotated[str, msgspec.Meta(min_length=18, max_length=18)]


class RealName(Outbound):
    name: str  # masked: "张*"
    id_number: str  # masked: "**************1234"
    sex: Literal["M", "F"]
    birth_date: dt.date | None = None
    """Never sent any more (the birth date is not needed to show a profile); kept so old clients still decode."""


class ProfileResponse(Outbound):
    id: int
    phone: str  # masked: "138****1234"
    roles: list[str]
    verified: bool
    real_name: RealName | None = None


class RoleChange(Inbound):
    role: Role


class RoleChangeResult(Outbound):
    account_id: int
    role: str
    changed: bool
    note: str = "takes effect at once; the account's sessions have ended"


class SmsOutboxEntry(Outbound):
    phone: str
    code: str
    template: str
    message_id: str
    sent_at: float
