"""Wire types of the one-card API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from server.wire import Inbound, Outbound

AmountFen = Annotated[int, msgspec.Meta(gt=0, le=10_000_000, description="Integer fen (1 yuan = 100 fen)")]


class OpenAccountRequest(Inbound):
    ss_card_number: Annotated[
        str,
        msgspec.Meta(min_length=9, max_length=20, description="Social security card number, e.g. A12345678"),
    ]


class OnecardResponse(Outbound):
    balance_fen: int
    card_number: str
    """Masked: "A******78"."""
    ecard_status: str
    opened_at: dt.datetime


class StatementEntryOut(Outbound):
    posted_at: dt.datetime
    kind: str
    amount_fen: int
    balance_fen: int
    description: str


class StatementResponse(Outbound):
    month: str
    opening_balance_fen: int
    closing_balance_fen: int
    credits_fen: int
    debits_fen: int
    entries: list[StatementEntryOut]


class TopupRequest(Inbound):
    amount_fen: AmountFen


class TopupResponse(Outbound):
    order_no: str
    amount_fen: int
    state: str
    pay_url: str
    pay_params: dict[str, str]
    expires_at: dt.datetime


class TopupStatusResponse(Outbound):
    order_no: str
    amount_fen: int
    state: str
    credited: bool


class NotifyAck(Outbound):
    code: str = "SUCCESS"
    outcome: str = ""


class DeviceRequest(Inbound):
    public_key: Annotated[
        str,
        msgspec.Meta(
            min_length=43, max_length=44, description="Raw Ed25519 public key, base64url, no padding"
        ),
    ]


class DeviceCertificateResponse(Outbound):
    id: int
    serial: str
    certificate: str
    """base64url (unpadded) certificate bytes for the phone's Holder."""
    key_id: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    max_offline_uses: int
    max_offline_amount_fen: int


class DeviceRevoked(Outbound):
    id: int
    revoked_at: dt.datetime


class MismatchOut(Outbound):
    kind: str
    order_no: str | None = None
    provider_amount_fen: int | None = None
    ledger_amount_fen: int | None = None
    detail: str | None = None


class ReconciliationResponse(Outbound):
    date: dt.date
    provider: str
    provider_count: int
    provider_total_fen: int
    ledger_count: int
    ledger_total_fen: int
    matched: int
    mismatches: list[MismatchOut]
