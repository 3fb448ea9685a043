"""Wire types of the terminal <-> server offline upload: `POST /v1/scans/batch` request and response.

The server decodes `ScanBatch` and encodes `ScanBatchResult` with these same Structs, so both ends
agree by construction. docs/credentials.md shows the JSON.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["ScanBatch", "ScanBatchResult", "ScanRecord", "ScanRecordResult"]

ClockSource = Literal["ntp", "gnss", "rtc"]


class _Inbound(msgspec.Struct, forbid_unknown_fields=True):
    """Both ends read these: an unknown field is a version mismatch, refused rather than half-read."""


class ScanRecord(_Inbound):
    record_id: str
    """A UUID-shaped id unique per terminal scan; the server deduplicates by it, so re-sending is safe."""
    payload: str
    """The QR text as scanned."""
    scanned_at: int
    """Unix milliseconds by the terminal's clock."""
    clock_source: ClockSource
    amount_fen: int
    local_result: Literal["accept", "reject"]
    local_reason: str | None


class ScanBatch(_Inbound):
    batch_id: str
    records: list[ScanRecord]


class ScanRecordResult(_Inbound):
    record_id: str
    status: Literal["accepted", "rejected", "duplicate"]
    reason: str | None


class ScanBatchResult(_Inbound):
    batch_id: str
    results: list[ScanRecordResult]
