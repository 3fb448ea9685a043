"""The scan pipeline: an online scan step by step, and offline uploads (`offline.py`); docs/scan.md describes it
with its reason codes.

decode -> signature against the trust list -> time window (clock-skew tolerance) -> revocation -> scene policy
-> replay guard -> durable record -> event sink -> answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from yima_sdk.codes import CredentialError, VerifiedCode
from yima_sdk.terminal import ScanBatch, ScanBatchResult

from server.core import Core
from server.ids import uuid7, uuid_text
from server.observability import outage_log
from server.terminals import repository
from server.terminals.events import AppPart, NoScanEvents, ScanEvent, ScanEventSink, holder_of
from server.terminals.policies import ScenePolicies, ScenePolicy
from server.terminals.ports import (
    CodeCredentials,
    CodeSubject,
    OfflineSettlement,
    ResidentNames,
    SceneDocuments,
)
from server.terminals.registry import TerminalInfo
from server.terminals.scans.checks import CodeChecks
from server.terminals.scans.guard import GUARD_UNREACHABLE, ScanGuard
from server.terminals.scans.offline import OfflineUploads
from server.terminals.scans.outbox import ScanOutbox
from server.terminals.scans.record import StoredScan
from server.terminals.scans.recorder import ScanRecorder
from server.terminals.scans.taps import tap_key


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    scan_id: str
    result: str
    reason: str | None
    colour: str | None
    credential_type: str | None
    name: str | None
    repeat: bool
    expires_at: int | None
    miniapp: AppPart | None = None
    clock_offset_ms: int | None = None


def _decision_value(result: str, reason: str | None, scan_id: str) -> bytes:
    return f"{result}|{reason or ''}|{scan_id}".encode()


def _parse_decision(value: bytes) -> tuple[str, str | None, str]:
    result, reason, scan_id = value.decode().split("|", 2)
    return result, reason or None, scan_id


class _Scan:
    """One online scan on its way through the steps: what they decided so far."""

    __slots__ = (
        "account_id",
        "answer_id",
        "code",
        "reason",
        "repeat",
        "result",
        "scan_id",
        "spends",
        "stop",
        "subject",
        "tap",
        "uuid",
    )

    def __init__(self, stop: str | None = None, tap: str = "on") -> None:
        self.stop, self.tap = stop, tap
        self.uuid = uuid7()
        self.scan_id = self.answer_id = uuid_text(self.uuid)
        self.code: VerifiedCode | None = None
        self.subject: CodeSubject | None = None
        self.account_id: int | None = None
        self.result = "accept"
        self.reason: str | None = None
        self.repeat = False
        self.spends: str | None = None
        """Set when this scan spends its code: the durable claim with its record decides."""

    def reject(self, reason: str) -> None:
        self.result, self.reason = "reject", reason


class ScanService:
    def __init__(
        self,
        core: Core,
        credentials: CodeCredentials,
        policies: ScenePolicies,
        guard: ScanGuard,
        recorder: ScanRecorder,
        residents: ResidentNames,
        settlement: OfflineSettlement,
        documents: SceneDocuments,
        *,
        clock: Callable[[], float] = time.time,
        events: ScanEventSink | None = None,
    ) -> None:
        self._credentials = credentials
        self._checks = CodeChecks(credentials)
        self.policies = policies
        self._guard = guard
        self._recorder = recorder
        self._residents = residents
        self.clock = clock
        self.events: ScanEventSink = events or NoScanEvents()
        self.offline = OfflineUploads(core.db, self._checks, settlement, documents)
        settings = core.settings
        self.outbox = ScanOutbox(
            core.db,
            self.events,
            poll_s=settings.scan_outbox_poll_s,
            lease_s=settings.scan_outbox_lease_s,
            hold_s=settings.scan_outbox_hold_s,
            retention_days=settings.scan_outbox_retention_days,
            clock=clock,
        )
        self._names: dict[int, str] = {}

    def close(self) -> None:
        self.offline.close()

    @property
    def clock_skew_s(self) -> float:
        return self._credentials.trust.clock_skew_s

    # -- online -------------------------------------------------------------------------------------------

    async def scan(
        self,
        terminal: TerminalInfo,
        payload: str,
        scanned_at: datetime,
        stop: str | None = None,
        tap: str = "on",
    ) -> ScanOutcome:
        now = self.clock()
        policy = self.policies.for_scene(terminal.kind, terminal.scene)
        scan = _Scan(stop, tap)
        try:
            code = await self._checks.verify(payload, now)
        except CredentialError as exc:
            scan.reject(exc.code)
        else:
            if code.app_pass is not None:
                await self._check_pass(scan, terminal, code)
            elif (once := self._check(scan, policy, code, now)) is not None:
                await self._guard_replay(scan, terminal, code, once, now)
        clock_offset_ms = self._clock_offset_ms(scanned_at, now)
        # The app hears when the scan happened: the terminal's time, unless its clock is off by more than the
        # tolerance (flagged below): then ours, which decided the scan. A bus app prices a ride by this time, so
        # a terminal a day slow must not move a boarding into another day or month (its fare caps).
        happened = scanned_at if clock_offset_ms is None else datetime.fromtimestamp(now, UTC)
        # the bound app's event is read for while the scan commits (its result may still turn to a replay)
        prepared = (
            self.events.prepare(self._event(scan, terminal, happened, self._checks.issuer))
            if scan.result == "accept"
            else None
        )
        claimed = await self._recorder.record(
            self._stored(scan, terminal, now, scanned_at, clock_offset_ms),
            tap_key(scan.code.replay_key, scan.tap)
            if scan.spends is not None and scan.code is not None
            else None,
        )
        if scan.spends is not None and not claimed:
            # Spent before: by an offline upload, or before this worker's Redis lost the key.
            scan.reject("scan.replayed")
        miniapp = await self.events.scan_recorded(
            self._event(scan, terminal, happened, self._checks.issuer), prepared
        )
        # The masked name shows where the scene shows it, on an accepted scan or one its policy refused; never for
        # an app's pass: sharing a pass with another app is not consent to be named to its staff.
        account_id, reason = scan.account_id, scan.reason
        shown = (
            policy.show_name
            and (scan.code is None or scan.code.app_pass is None)
            and (scan.result == "accept" or (reason is not None and reason.startswith("policy.")))
        )
        name = await self._masked_name(account_id) if shown and account_id is not None else None
        verified = scan.code
        return ScanOutcome(
            scan.answer_id,
            scan.result,
            scan.reason,
            verified.colour if verified else None,
            verified.kind if verified else None,
            name,
            scan.repeat,
            verified.expires_at if verified else None,
            miniapp,
            clock_offset_ms,
        )

    async def _check_pass(self, scan: _Scan, terminal: TerminalInfo, code: VerifiedCode) -> None:
        """A pass (a ticket): the app bound to the scene decides what it admits, re-entries included, so no replay
        guard stands between them; it only has to honour the pass at all. A pass names no one: its holder comes
        from the issuing app's record."""
        assert code.app_pass is not None
        scan.code = code
        check = await self.events.check_pass(terminal.kind, terminal.scene, code.app_pass)
        if check.reason:
            scan.reject(check.reason)
        scan.account_id = check.account_id

    def _check(self, scan: _Scan, policy: ScenePolicy, code: VerifiedCode, now: float) -> bool | None:
        """The verified code's subject and revocation, then the scene's policy. None when the code is refused
        whatever the scene; else whether it is spent once anywhere (the replay guard's next question)."""
        subject = self._checks.subject(code)
        scan.code, scan.subject = code, subject
        scan.account_id = subject.account_id if subject is not None else None
        refusal = self._checks.refusal(code, subject, now)
        if refusal is not None:
            scan.reject(refusal)
            return None
        policy_reason = self._checks.policy_reason(policy, code)
        if policy_reason is not None:
            scan.reject(policy_reason)
        return self._checks.spends(policy, code)

    async def _guard_replay(
        self, scan: _Scan, terminal: TerminalInfo, code: VerifiedCode, once: bool, now: float
    ) -> None:
        """Replays and the resident's newest revocation mark, from the guard. A code spent once anywhere (`once`)
        is claimed durably with its record (`_stored`), and only there: here such a scan reads its mark alone.
        An entry scene's repeat read gets the first answer."""
        # A tap-off spends the code apart from its boarding: the code a rider boarded with taps off once too.
        spent = tap_key(code.replay_key, scan.tap).hex()
        if once:
            # A refused code was not spent: it may still pass where its colour is allowed.
            replay_key = None if scan.reason is not None else "scan:" + spent
            claim_key = None
        else:
            replay_key = claim_key = f"scan:{terminal.id}:{spent}"
        ttl = max(1.0, code.expires_at - now + 2 * self.clock_skew_s)
        subject = scan.subject
        mark_key = (
            self._credentials.ankang.generation_key(subject.account_id) if subject is not None else None
        )
        # The earlier answer is read back only for a claim: a code spent once anywhere stores none here.
        answer = b"" if claim_key is None else _decision_value(scan.result, scan.reason, scan.scan_id)
        try:
            earlier, mark = await self._guard.claim(claim_key, answer, ttl, mark_key)
        except GUARD_UNREACHABLE as exc:
            if not once:
                raise  # an entry scene's only record of an earlier read is in Redis: 503, send again
            earlier, mark = None, await self._mark_without_guard(subject, exc)
        if mark is not None and subject is not None and subject.generation < int(mark):
            scan.reject("credential.revoked")
        elif earlier is not None:
            # An entry scene: a terminal retrying (or a door reading a code twice) wants the first answer, id
            # included: it is the same entry. The read is still recorded, as a repeat.
            scan.result, scan.reason, scan.answer_id = _parse_decision(earlier)
            scan.repeat = True
        elif replay_key is not None and once:
            scan.spends = replay_key

    async def _mark_without_guard(self, subject: CodeSubject | None, exc: BaseException) -> bytes | None:
        """Redis is down: the durable claim decides as always, and the revocation generation is read from
        PostgreSQL in place of its mark."""
        outage_log.failed("cache", f"scan replay fast path: {type(exc).__name__}")
        if subject is None:
            return None
        return str(await self._credentials.ankang.generation(subject.account_id)).encode()

    def _clock_offset_ms(self, scanned_at: datetime, now: float) -> int | None:
        """A terminal clock off by more than the tolerance is flagged on the scan (stored, and in the answer): the
        scan is still decided by our clock, but its scanned_at is not to be trusted."""
        offset_ms = round((scanned_at.timestamp() - now) * 1000)
        return offset_ms if abs(offset_ms) > self.clock_skew_s * 1000 else None

    @staticmethod
    def _stored(
        scan: _Scan, terminal: TerminalInfo, now: float, scanned_at: datetime, clock_offset_ms: int | None
    ) -> StoredScan:
        """The scan's durable record: stored (with the claim of the code it spends) before it is answered."""
        code = scan.code
        return StoredScan(
            id=scan.uuid,
            terminal_id=terminal.id,
            received_at=datetime.fromtimestamp(now, UTC),
            scanned_at=scanned_at,
            mode="online",
            credential_type=code.kind if code else None,
            issuer=code.issuer if code else None,
            subject_ref=code.subject_ref if code and code.subject_ref else None,
            account_id=scan.account_id,
            colour=code.colour if code else None,
            result=scan.result,
            reason=scan.reason,
            repeat=scan.repeat,
            clock_offset_ms=clock_offset_ms,
            stop=scan.stop,
            tap=scan.tap,
        )

    @staticmethod
    def _event(scan: _Scan, terminal: TerminalInfo, scanned_at: datetime, ours: int) -> ScanEvent:
        code = scan.code
        return ScanEvent(
            scan.scan_id,
            terminal.id,
            terminal.kind,
            terminal.scene,
            scan.result,
            scan.reason,
            code.kind if code else None,
            scan.account_id,
            scanned_at,
            "online",
            unit=terminal.unit,
            issuer=code.issuer if code else None,
            app_pass=code.app_pass if code else None,
            colour=code.colour if code else None,
            stop=scan.stop,
            tap=scan.tap,
            holder=holder_of(code, ours),
        )

    async def _masked_name(self, account_id: int) -> str | None:
        # Names never change once verified, so this cache needs no invalidation.
        name = self._names.get(account_id)
        if name is None:
            name = await self._residents.masked_name(account_id)
            if name is None:
                return None
            if len(self._names) > 100_000:
                self._names.clear()
            self._names[account_id] = name
        return name

    # -- offline batches ----------------------------------------------------------------------------------

    async def upload_batch(self, terminal: TerminalInfo, batch: ScanBatch) -> ScanBatchResult:
        """Re-verify, deduplicate, settle and store an offline upload (`OfflineUploads.upload`), with an outbox row
        per new accepted record for the scene's mini-app; then deliver them in the background (outbox.py: at
        least once, a server stopped before the app handled them leaves the rows to the deliverers)."""
        policy = self.policies.for_scene(terminal.kind, terminal.scene)
        result, turn = await self.offline.upload(
            terminal, batch, policy, self.clock(), self.events, self.outbox.live_take()
        )
        self.outbox.deliver_live(turn)
        return result

    async def my_scans(self, conn: asyncpg.Connection, account_id: int, limit: int) -> list[asyncpg.Record]:
        return await repository.scans_of_account(conn, account_id, limit)
