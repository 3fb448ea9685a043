"""Wire types of the credentials domain: codes, trust list administration, health status, revocation."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from server.wire import Inbound, Outbound, whole

Colour = Literal["green", "yellow", "red"]
IssuerCode = Annotated[
    int, msgspec.Meta(ge=100000, le=999999, description="6-digit administrative division code")
]
KeyIdHex = Annotated[
    str, msgspec.Meta(pattern=whole("[0-9a-f]{8}"), description="4-byte key id as 8 hex digits")
]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class AnkangCodeResponse(Outbound):
    payload: str
    """QR text: "YA:" + Base45; renders in QR alphanumeric mode."""
    color: Colour
    expires_at: dt.datetime
    refresh_after: dt.datetime
    """Ask for a new code from this time on (about every minute)."""
    key_id: str
    qr_version: int


class PartnerKeyRequest(Inbound):
    issuer: IssuerCode
    key_id: KeyIdHex
    public_key: Annotated[str, msgspec.Meta(description="raw Ed25519 public key, unpadded base64url")]
    not_before: dt.datetime
    not_after: dt.datetime
    alg: Literal["Ed25519"] = "Ed25519"
    credential_types: list[Literal["ankang_code", "device_certificate"]] = msgspec.field(
        default_factory=lambda: ["ankang_code", "device_certificate"]
    )


class PartnerKey(Outbound):
    issuer: int
    key_id: str
    alg: str
    public_key: str
    credential_types: list[str]
    not_before: dt.datetime
    not_after: dt.datetime
    trust_list_version: int


class TrustListEnvelope(Outbound):
    """GET /v1/trust-list: the root-signed document (yima_sdk.trust.TrustList.verify reads it)."""

    document: str
    """base64url of the JSON trust list document."""
    signature: str
    """base64url Ed25519 signature of the document's bytes by the root key."""
    root_key_id: str


class TrustListInfo(Outbound):
    version: int
    etag: str
    root_key_id: str
    root_public_keys: dict[str, str]
    """kid -> unpadded base64url raw Ed25519 public key of every trust-list root key (for pinning)."""


class HealthStatusRequest(Inbound):
    id_number: Annotated[str, msgspec.Meta(min_length=18, max_length=18)]
    color: Colour
    reason: Reason
    effective_at: dt.datetime | None = None
    """When the colour applies; default now."""


class HealthStatusSet(Outbound):
    color: Colour
    effective_at: dt.datetime
    account_known: bool


class ImportRowError(Outbound):
    line: int
    reason: str


class HealthImportResult(Outbound):
    import_id: str
    applied: int
    rejected: int
    errors: list[ImportRowError]
    repeated: bool = False
    """True when this exact file was imported before: nothing was applied again."""


class HealthHistoryEntry(Outbound):
    color: Colour
    reason: str
    effective_at: dt.datetime


class MyHealthStatus(Outbound):
    color: Colour
    effective_at: dt.datetime | None
    history: list[HealthHistoryEntry]


class RevokeCodesRequest(Inbound):
    reason: Reason = "lost_phone"


class AdminRevokeCodesRequest(Inbound):
    account_id: int
    reason: Reason


class RevokeCodesResult(Outbound):
    revoked: int
    """How many code references were published to the revocation list."""
    revocation_version: int
