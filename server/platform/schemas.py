"""Wire types of the developer API, the operator's review and release API, and the resident's side."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from server.wire import Inbound, Outbound

Percent = Annotated[int, msgspec.Meta(ge=0, le=100)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Version = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
AppId = Annotated[str, msgspec.Meta(min_length=3, max_length=128)]
AccountIds = Annotated[list[int], msgspec.Meta(max_length=1000)]


class DeveloperToken(Outbound):
    token: str
    """Shown once; store it like a password. Send as `Authorization: Bearer ydt_...`."""
    id: int
    created_at: dt.datetime


class Check(Outbound):
    name: str
    ok: bool
    detail: str = ""


class UploadResult(Outbound):
    app_id: str
    version: str
    digest: str
    status: Literal["in_review", "checks_failed", "approved", "rejected"]
    checks: list[Check]


class VersionState(Outbound):
    version: str
    digest: str
    status: str
    checks: list[Check]
    uploaded_at: dt.datetime
    review_reason: str | None = None
    reviewed_at: dt.datetime | None = None
    released_at: dt.datetime | None = None


class Quotas(Outbound):
    calls_per_minute: int
    resident_calls_per_minute: int
    storage_max_keys: int
    storage_max_bytes: int
    storage_keys: int
    storage_bytes: int


class AppState(Outbound):
    app_id: str
    name: str
    status: Literal["active", "suspended"]
    versions: list[VersionState]
    quotas: Quotas
    stable_version: str | None = None
    phased_version: str | None = None
    phased_percent: int = 0
    whitelist: list[int] = []
    suspended_reason: str | None = None


class AppSummary(Outbound):
    app_id: str
    name: str
    status: Literal["active", "suspended"]
    stable_version: str | None = None
    phased_version: str | None = None
    phased_percent: int = 0
    suspended_reason: str | None = None


class ReviewItem(Outbound):
    app_id: str
    version: str
    digest: str
    size_bytes: int
    uploaded_at: dt.datetime
    developer_id: int
    checks: list[Check]
    manifest: dict[str, Any]
    previous_version: str | None = None
    """The version residents run now (the stable release), to compare with; omitted for a first version."""
    previous_manifest: dict[str, Any] | None = None


class ReviewDecision(Inbound):
    decision: Literal["approve", "reject"]
    reason: Reason


class ReviewResult(Outbound):
    app_id: str
    version: str
    status: str


class ReleaseRequest(Inbound):
    version: Version
    whitelist: AccountIds = []
    """Account ids that get the version first, whatever their bucket."""
    percent: Percent = 0


class PhaseRequest(Inbound):
    percent: Percent | None = None
    """May only grow; 100 completes the release."""
    whitelist: AccountIds = []
    """Account ids added to the phased group."""


class RollbackRequest(Inbound):
    version: Version


class SuspendRequest(Inbound):
    reason: Reason


class QuotaRequest(Inbound):
    calls_per_minute: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] | None = None
    resident_calls_per_minute: Annotated[int, msgspec.Meta(ge=1, le=100_000)] | None = None
    storage_max_keys: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)] | None = None
    storage_max_bytes: Annotated[int, msgspec.Meta(ge=0, le=1 << 40)] | None = None


class SceneBinding(Inbound):
    app_id: AppId


class SceneBound(Outbound):
    kind: str
    scene: str
    app_id: str


class Scope(Outbound):
    name: str
    purpose: str
    """Why the app asks (shown on the consent screen, PIPL)."""
    state: Literal["granted", "refused", "not_asked"]


class CatalogEntry(Outbound):
    app_id: str
    name: str
    version: str
    scopes: list[Scope] = []
    page: str | None = None
    """Where this version's page is (`/miniapps/{app_id}/versions/{version}/ui/`); absent when it has no `ui/`."""


class AppSession(Outbound):
    app_id: str
    token: str
    """`yas_...`: send as `Authorization: Bearer` to `/v1/miniapps/{app_id}/api/...`; refused everywhere else."""
    expires_in: int
    """Seconds; ask for a new one when it has run out (`miniapp.session_expired`)."""
    user_id: str
    """Your id in this app (the app knows you by it and by nothing else)."""


class PassToShow(Inbound):
    payload: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    """The `YP1.` pass as the app issued it (ctx.credentials.issue_pass)."""


class ConsentDecision(Inbound):
    granted: bool
    """false records a refusal: the app is told `consent.denied` and the phone does not ask again."""


class Consent(Outbound):
    app_id: str
    scope: str
    granted: bool
    decided_at: dt.datetime


class InboxMessage(Outbound):
    id: int
    app_id: str
    app_name: str
    title: str
    body: str
    created_at: dt.datetime


class PaymentRefund(Outbound):
    """Money the app gave back from a payment, to the one-card it was charged to."""

    amount_fen: int
    refunded_at: dt.datetime
    reason: str | None = None
    """The app's words (`payments.refund`); none for refunds given before the platform kept them."""


class Payment(Outbound):
    """A mini-app payment. `status` is whether it was charged (`succeeded` stays `succeeded` when the app gives
    money back: the charge happened); `refunded_fen` is how much of it came back to the one-card, `refunds` each
    refund, oldest first (both omitted while nothing was refunded)."""

    id: int
    app_id: str
    amount_fen: int
    reason: str
    status: Literal["pending_confirmation", "succeeded", "declined", "failed", "cancelled"]
    created_at: dt.datetime
    failure: str | None = None
    decided_at: dt.datetime | None = None
    refunded_fen: int = 0
    """All refunded so far, at most `amount_fen`: equal to it when the whole payment came back."""
    refunds: list[PaymentRefund] = msgspec.field(default_factory=list)
