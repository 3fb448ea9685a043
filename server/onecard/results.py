"""What one-card operations return to other domains and to controllers (stored as idempotent results too)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

import msgspec


class CardView(msgspec.Struct, frozen=True):
    onecard_id: int
    balance_fen: int
    card_number_masked: str
    ecard_status: str
    opened_at: dt.datetime


class ChargeResult(msgspec.Struct, frozen=True):
    charge_id: int
    amount_fen: int
    balance_fen: int
    charged_at: dt.datetime


class RefundResult(msgspec.Struct, frozen=True):
    charge_id: int
    amount_fen: int
    refunded_fen: int
    """Total refunded of the charge so far."""
    balance_fen: int


class TopupOrder(msgspec.Struct, frozen=True):
    order_no: str
    amount_fen: int
    state: str
    pay_url: str
    pay_params: dict[str, str]
    expires_at: dt.datetime


class IssuedCertificate(msgspec.Struct, frozen=True):
    id: int
    serial: str
    """Hex of the 8-byte serial terminals see in revocation lists."""
    certificate: str
    """base64url (unpadded) of the certificate bytes, for yima_sdk.holder.Holder.install_certificate."""
    key_id: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    max_offline_uses: int
    max_offline_amount_fen: int


class StatementEntry(msgspec.Struct, frozen=True):
    posted_at: dt.datetime
    kind: str
    amount_fen: int
    balance_fen: int
    description: str


class Statement(msgspec.Struct, frozen=True):
    month: str
    opening_balance_fen: int
    closing_balance_fen: int
    credits_fen: int
    debits_fen: int
    entries: list[StatementEntry]


MismatchKind = Literal[
    "missing_credit",
    "unknown_order",
    "amount_mismatch",
    "missing_at_provider",
    "notification_anomaly",
    "wallet_drift",
    "journal_unbalanced",
    "rides_unposted",
]


class Mismatch(msgspec.Struct, frozen=True, omit_defaults=True):
    kind: MismatchKind
    order_no: str | None = None
    provider_amount_fen: int | None = None
    ledger_amount_fen: int | None = None
    detail: str | None = None


class ReconciliationReport(msgspec.Struct, frozen=True):
    date: dt.date
    provider: str
    provider_count: int
    provider_total_fen: int
    ledger_count: int
    ledger_total_fen: int
    matched: int
    mismatches: list[Mismatch]
