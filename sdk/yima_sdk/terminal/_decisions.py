"""What a terminal decides about a group of scans, and what it remembers of earlier ones to decide the next: the
codes seen within the replay window (a code shown again gets its earlier answer), ride codes for as long as their
timestamp could pass (shown twice, never charged twice), and the offline amount spent per device certificate.
Writing the records durably, and publishing a group only then, is `Terminal`'s part.
"""

from __future__ import annotations

import os
import uuid
from collections import deque
from concurrent.futures import Future
from typing import Literal

import msgspec

from yima_sdk.codes import CredentialError, VerifiedCode, Verifier
from yima_sdk.terminal._store import RecordRow
from yima_sdk.trust import RevocationSet

__all__ = ["Group", "ScanDecision", "ScanMemory"]


class ScanDecision(msgspec.Struct, frozen=True, gc=False):
    """The answer to one scan, given only once its record is on disk."""

    record_id: str
    result: Literal["accept", "reject"]
    reason: str | None
    """A `credential.*` code when rejected (`credential.replayed`: a ride code shown again)."""
    code: VerifiedCode | None
    repeated: bool = False
    """True when this is the same code read again within the replay window: the earlier answer,
    with the earlier record id, and no new record."""


class Group:
    """One group of decided scans: its records, and the replay and spending state it adds once durable."""

    __slots__ = ("commit", "decisions", "now", "recent", "rows", "spent")

    def __init__(
        self,
        now: float,
        decisions: list[ScanDecision],
        rows: list[RecordRow],
        recent: dict[bytes, ScanDecision],
        spent: dict[bytes, int],
    ) -> None:
        self.now = now
        self.decisions = decisions
        self.rows = rows
        self.recent = recent
        self.spent = spent
        self.commit: Future[None] | None = None


class ScanMemory:
    """The replay and spending state of one terminal, and the decisions made against it."""

    def __init__(self, spent: dict[bytes, int], replay_window_s: float, ride_memory_s: float) -> None:
        self._spent = spent
        self._replay_window = replay_window_s
        self._ride_memory = ride_memory_s
        self._recent: dict[bytes, tuple[float, ScanDecision]] = {}
        # When each group's codes were seen, to forget them: Ankang codes after the replay window, ride codes
        # after the ride memory (holding every Ankang code that long cost memory and garbage-collector time).
        self._recent_codes: deque[tuple[float, list[bytes]]] = deque()
        self._recent_rides: deque[tuple[float, list[bytes]]] = deque()
        # Record ids: a random per-run prefix plus a counter, UUID-shaped (version 4 and variant bits
        # set). Unique without a random draw per scan, which would cost more than the rest of the record.
        prefix = uuid.UUID(bytes=os.urandom(16), version=4).hex
        self._id_prefix = f"{prefix[:8]}-{prefix[8:12]}-{prefix[12:16]}-{prefix[16:20]}-"
        self._id_counter = 0

    def publish(self, group: Group) -> None:
        """`group` is durable: its codes and spending now count."""
        now, recent, spent = group.now, self._recent, self._spent
        codes: list[bytes] = []
        rides: list[bytes] = []
        for key, decision in group.recent.items():
            recent[key] = (now, decision)
            (rides if decision.code is not None and decision.code.kind == "ride_code" else codes).append(key)
        if codes:
            self._recent_codes.append((now, codes))
        if rides:
            self._recent_rides.append((now, rides))
        for serial, amount in group.spent.items():
            spent[serial] = spent.get(serial, 0) + amount

    def decide(
        self,
        verifier: Verifier,
        revocations: RevocationSet,
        now: float,
        scans: list[tuple[str, int]],
        inflight: Group | None,
        stop: str | None = None,
        tap: str = "on",
    ) -> Group:
        """Decide a group of scans at `now` and build their records; nothing is written or published yet.
        `inflight` is the group still being committed, if any. A tap-off (`tap="off"`) is remembered apart from
        boardings: the code a rider boarded with may tap off once too (a short ride inside its validity)."""
        self._forget_before(now)
        recent = self._recent
        spent = self._spent
        # The group still being committed (submit_many) is not published yet, but its scans happened
        # first: a code repeated from it, or spending on the same certificate, must count.
        ahead_recent = inflight.recent if inflight is not None else {}
        ahead_spent = inflight.spent if inflight is not None else {}
        replay_window = self._replay_window
        batch_spent: dict[bytes, int] = {}
        batch_recent: dict[bytes, ScanDecision] = {}
        decisions: list[ScanDecision] = []
        rows: list[RecordRow] = []
        prefix = self._id_prefix
        counter = self._id_counter
        # The whole group is verified first (all its signatures back to back), then decided in order.
        verdicts = verifier.verify_many([(payload, now) for payload, _ in scans], revocations=revocations)
        for (payload, amount_fen), verdict in zip(scans, verdicts, strict=True):
            code: VerifiedCode | None = None
            if isinstance(verdict, CredentialError):
                result: Literal["accept", "reject"] = "reject"
                reason: str | None = verdict.code
            else:
                code = verdict
                key = code.replay_key if tap == "on" else b"off:" + code.replay_key
                earlier = batch_recent.get(key) or ahead_recent.get(key)
                seen = recent.get(key)
                if earlier is None and seen is not None and now - seen[0] <= replay_window:
                    earlier = seen[1]
                if earlier is not None:
                    decisions.append(msgspec.structs.replace(earlier, repeated=True))
                    continue
                result, reason = "accept", None
                if code.kind == "ride_code":
                    serial = code.certificate_serial
                    limit = code.max_offline_amount_fen
                    assert serial is not None and limit is not None
                    total = (
                        spent.get(serial, 0)
                        + ahead_spent.get(serial, 0)
                        + batch_spent.get(serial, 0)
                        + amount_fen
                    )
                    if seen is not None and seen[1].result == "accept":
                        result, reason = "reject", "credential.replayed"
                    elif total > limit:
                        result, reason = "reject", "credential.offline_limit_exceeded"
                    else:
                        batch_spent[serial] = batch_spent.get(serial, 0) + amount_fen
            counter += 1
            record_id = f"{prefix}{counter:012x}"
            decision = ScanDecision(record_id, result, reason, code)
            if code is not None and reason != "credential.replayed":
                batch_recent[key] = decision
            decisions.append(decision)
            rows.append(
                (record_id, payload, amount_fen, result, reason)
                if stop is None and tap == "on"
                else (record_id, payload, amount_fen, result, reason, stop, tap)
            )
        self._id_counter = counter
        return Group(now, decisions, rows, batch_recent, batch_spent)

    def _forget_before(self, now: float) -> None:
        self._forget(self._recent_codes, now - self._replay_window)
        self._forget(self._recent_rides, now - max(self._ride_memory, self._replay_window))

    def _forget(self, order: deque[tuple[float, list[bytes]]], horizon: float) -> None:
        recent = self._recent
        while order and order[0][0] < horizon:
            at, keys = order.popleft()
            for key in keys:
                seen = recent.get(key)
                if seen is not None and seen[0] == at:
                    del recent[key]
