"""One offline record of an upload on its way through the batch pipeline (offline.py), and the verdicts the
upload answers."""

from __future__ import annotations

from datetime import UTC, datetime

from yima_sdk.codes import VerifiedCode
from yima_sdk.terminal import ScanRecord, ScanRecordResult

from server.ids import uuid7
from server.terminals.events import ScanEvent, holder_of
from server.terminals.ports import CodeSubject
from server.terminals.registry import TerminalInfo
from server.terminals.scans.record import StoredScan
from server.terminals.scans.taps import tap_key

MAX_OFFLINE_AMOUNT_FEN = 1_000_000
"""One offline record charges at most 10,000 yuan; a larger amount is a broken terminal, refused per record."""


class OfflineRecord:
    """One offline record of an upload, on its way through the batch pipeline."""

    __slots__ = (
        "at",
        "code",
        "holder",
        "index",
        "reason",
        "record",
        "rider",
        "scan_id",
        "scanned_at",
        "settled_fen",
        "settlement",
        "spends",
        "subject",
    )

    def __init__(self, index: int, record: ScanRecord, received: datetime) -> None:
        self.index, self.record = index, record
        self.scan_id = uuid7()
        at = record.scanned_at / 1000
        try:
            scanned_at = datetime.fromtimestamp(at, UTC)
        except (OverflowError, OSError, ValueError):
            scanned_at, at = received, float("nan")
        self.at, self.scanned_at = at, scanned_at
        self.code: VerifiedCode | None = None
        self.subject: CodeSubject | None = None
        self.holder: int | None = None
        """An app pass's holder (a pass names no one: the issuing app's record does)."""
        self.reason: str | None = None
        self.settlement: str | None = None
        self.settled_fen: int | None = None
        self.rider: int | None = None  # whose one-card settled a ride code (the code names the card)
        self.spends = False

    @property
    def charged(self) -> bool:
        """An accepted ride with a fare: one-card settles it."""
        code = self.code
        return (
            self.reason is None
            and code is not None
            and code.kind == "ride_code"
            and code.certificate_serial is not None
            and self.record.amount_fen > 0
            and self.record.tap == "on"
        )

    @property
    def claim(self) -> bytes:
        """The key this record spends its code under (a tap-off's apart from the boarding's)."""
        assert self.code is not None
        return tap_key(self.code.replay_key, self.record.tap)

    def stored(self, terminal_id: str, received: datetime) -> StoredScan:
        """The record as stored in `scans`, with its final decision."""
        code, subject, record = self.code, self.subject, self.record
        return StoredScan(
            id=self.scan_id,
            terminal_id=terminal_id,
            received_at=received,
            scanned_at=self.scanned_at,
            mode="offline",
            credential_type=code.kind if code else None,
            issuer=code.issuer if code else None,
            subject_ref=code.subject_ref if code and code.subject_ref else None,
            account_id=subject.account_id if subject else self.holder,
            colour=code.colour if code else None,
            result="accept" if self.reason is None else "reject",
            reason=self.reason,
            repeat=False,
            clock_offset_ms=None,  # an offline record's time is checked on its own (scan.clock_invalid)
            record_id=record.record_id,
            amount_fen=record.amount_fen if 0 <= record.amount_fen <= MAX_OFFLINE_AMOUNT_FEN else None,
            clock_source=record.clock_source,
            local_result=record.local_result,
            settlement=self.settlement,
            stop=record.stop,
            tap=record.tap,
            terminal_admitted=record.terminal_admitted,
            terminal_reason=record.terminal_reason,
        )

    def event(self, terminal: TerminalInfo, ours: int) -> ScanEvent:
        return ScanEvent(
            str(self.scan_id),
            terminal.id,
            terminal.kind,
            terminal.scene,
            "accept" if self.reason is None else "reject",
            self.reason,
            self.code.kind if self.code else None,
            self.subject.account_id
            if self.subject
            else (self.holder if self.holder is not None else self.rider),
            self.scanned_at,
            "offline",
            self.record.amount_fen if self.record.amount_fen > 0 else None,
            terminal.unit,
            self.code.issuer if self.code else None,
            app_pass=self.code.app_pass if self.code else None,
            settled_fen=self.settled_fen,
            colour=self.code.colour if self.code else None,
            stop=self.record.stop,
            tap=self.record.tap,
            holder=holder_of(self.code, ours),
            terminal_admitted=self.record.terminal_admitted,
            terminal_reason=self.record.terminal_reason,
        )


def scan_order(o: OfflineRecord) -> tuple[datetime, str]:
    return o.scanned_at, str(o.scan_id)


def distinct(records: list[ScanRecord], received: datetime) -> list[OfflineRecord]:
    """The records with a usable id, each id once: the same record twice in one upload gets the first's verdict."""
    offline: list[OfflineRecord] = []
    seen: set[str] = set()
    for i, record in enumerate(records):
        if 1 <= len(record.record_id) <= 64 and record.record_id not in seen:
            seen.add(record.record_id)
            offline.append(OfflineRecord(i, record, received))
    return offline


def answers(
    records: list[ScanRecord], stored: dict[str, tuple[str, str | None]], mine: list[OfflineRecord]
) -> list[ScanRecordResult]:
    """Each record's verdict. One stored before (an upload cut after its commit, sent again) gets its original
    verdict: the terminal learns what happened to each scan whichever upload it hears the answer of."""
    verdicts = {
        record_id: ("accepted" if result == "accept" else "rejected", reason)
        for record_id, (result, reason) in stored.items()
    }
    for o in mine:
        verdicts[o.record.record_id] = ("accepted" if o.reason is None else "rejected", o.reason)
    invalid = ("rejected", "scan.record_id_invalid")
    return [
        ScanRecordResult(record_id=r.record_id, status=status, reason=reason)  # type: ignore[arg-type]
        for r in records
        for status, reason in (verdicts.get(r.record_id, invalid),)
    ]
