"""Wire types of the terminal <-> server offline upload: `POST /v1/scans/batch` request and response.

The server decodes `ScanBatch` and encodes `ScanBatchResult` with these same Structs, so both ends
agree by construction. docs/credentials.md shows the JSON.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from yima_sdk._stops import STOP_PATTERN, Tap, valid_stop

__all__ = [
    "STOP_PATTERN",
    "ScanBatch",
    "ScanBatchResult",
    "ScanRecord",
    "ScanRecordResult",
    "Tap",
    "valid_stop",
]

ClockSource = Literal["ntp", "gnss", "rtc"]


class _Inbound(msgspec.Struct, forbid_unknown_fields=True):
    """Both ends read these: an unknown field is a version mismatch, refused rather than half-read."""


class ScanRecord(_Inbound, omit_defaults=True):
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
    stop: str | None = None
    """Where the terminal was (`STOP_PATTERN`), None when it did not say; the server refuses a record with a
    malformed stop (`scan.stop_invalid`). Left out of the JSON when None, as `tap` when `on`: a record without
    them reads as before to a server that does not know them."""
    tap: Tap = "on"
    """`off`: the rider tapping off (下车刷卡), charged nothing (`amount_fen` 0); the app bound to the scene may
    re-price the ride by stops travelled and give back the difference."""
    terminal_admitted: bool | None = None
    """A gate that decided the scan by its synced lists (`Terminal.admit`): whether it let the holder in; None (left
    out of the JSON) for every other scan. The app bound to the scene settles the scan as the gate decided it."""
    terminal_reason: str | None = None
    """Why the gate refused (`list.no_entry`, `list.used_up`, `list.closed`, a `credential.*` code...)."""


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
