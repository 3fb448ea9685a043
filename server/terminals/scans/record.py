"""The durable record of a scan: one row of `scans`, field by field. The repository maps it to SQL
(server/terminals/repository.py: `SCAN_COLUMNS`, `copy_scans`, `insert_scans_claiming`), nothing else does."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec


class StoredScan(msgspec.Struct, frozen=True, gc=False):
    """A scan as stored; the offline fields (the last five) stay None for an online scan. gc=False: a record
    holds no containers, so the collector need not track the thousands a busy worker makes per second."""

    id: uuid.UUID
    terminal_id: str
    received_at: datetime
    scanned_at: datetime
    """When the terminal says it scanned the code (an online scan's time is still decided by the server's)."""
    mode: str
    """"online" or "offline"."""
    credential_type: str | None
    issuer: int | None
    subject_ref: bytes | None
    account_id: int | None
    colour: str | None
    result: str
    """"accept" or "reject"."""
    reason: str | None
    repeat: bool
    """An entry scene read the same code again: answered with the first answer, stored as a repeat."""
    clock_offset_ms: int | None
    """The terminal's clock, off by more than the tolerance (online only: an offline time is checked alone)."""
    stop: str | None = None
    """Where the terminal said it was (a bus stop id), None when it did not say."""
    tap: str = "on"
    """"on" (boarding, entering: every scan before taps) or "off" (a rider tapping off)."""
    record_id: str | None = None
    """Offline: the terminal's id for the record, unique per terminal."""
    amount_fen: int | None = None
    """Offline: the fare the terminal charged, None when out of range."""
    clock_source: str | None = None
    local_result: str | None = None
    """Offline: what the terminal decided on its own."""
    settlement: str | None = None
    """Offline: "settled", "duplicate" or "rejected" for a ride charge, None when nothing was charged."""
    terminal_admitted: bool | None = None
    """Offline: a gate's own verdict on the scan it decided by its synced lists, None when no gate decided it."""
    terminal_reason: str | None = None
    """Offline: why that gate refused (`list.no_entry`...)."""


OFFLINE_ONLY = (
    "record_id",
    "amount_fen",
    "clock_source",
    "local_result",
    "settlement",
    "terminal_admitted",
    "terminal_reason",
)
