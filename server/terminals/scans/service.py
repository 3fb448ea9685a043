"""The scan pipeline, online and for offline batches; docs/scan.md describes it with its reason codes.

decode -> signature against the trust list -> time window (clock-skew tolerance) -> revocation -> replay guard
-> scene policy -> durable record -> event sink -> answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from yima_sdk.codes import CredentialError, VerifiedCode
from yima_sdk.terminal import ScanBatch, ScanBatchResult, ScanRecord, ScanRecordResult

from server.core import Core
from server.credentials.revocation import generation_key
from server.credentials.service import Credentials
from server.credentials.subject_ref import Subject
from server.ids import uuid7
from server.observability import outage_log
from server.terminals import errors, repository
from server.terminals.events import AppPart, NoScanEvents, ScanEvent, ScanEventSink
from server.terminals.policies import ScenePolicies, ScenePolicy
from server.terminals.ports import OfflineCharge, OfflineSettlement, ResidentNames, SceneDocuments
from server.terminals.registry import TerminalInfo
from server.terminals.scans.fares import UNPRICED, reprice
from server.terminals.scans.guard import GUARD_UNREACHABLE, ScanGuard
from server.terminals.scans.recorder import ScanRecorder

MAX_BATCH_RECORDS = 1000
MAX_OFFLINE_AGE_S = 7 * 86400
MAX_OFFLINE_AMOUNT_FEN = 1_000_000
"""One offline record charges at most 10,000 yuan; a larger amount is a broken terminal, refused per record."""
VERIFY_THREADS = 2
PARALLEL_VERIFY_MIN = 64
"""Smaller uploads are verified on the event loop: handing them to threads would cost more than it saves."""


class _Offline:
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
        self.subject: Subject | None = None
        self.holder: int | None = None
        """An app pass's holder (a pass names no one: the issuing app's record does)."""
        self.reason: str | None = None
        self.settlement: str | None = None
        self.settled_fen: int | None = None
        self.rider: int | None = None  # whose one-card settled a ride code (the code names the card)
        self.spends = False

    def row(self, terminal_id: str, received: datetime) -> tuple[Any, ...]:
        """The record's row in `scans` (repository.OFFLINE_SCAN_COLUMNS), with its final decision."""
        code, subject, record = self.code, self.subject, self.record
        return (
            self.scan_id,
            terminal_id,
            received,
            self.scanned_at,
            "offline",
            code.kind if code else None,
            code.issuer if code else None,
            code.subject_ref if code and code.subject_ref else None,
            subject.account_id if subject else self.holder,
            code.colour if code else None,
            "accept" if self.reason is None else "reject",
            self.reason,
            False,
            None,  # clock_offset_ms: an offline record's time is checked on its own (scan.clock_invalid)
            record.record_id,
            record.amount_fen if 0 <= record.amount_fen <= MAX_OFFLINE_AMOUNT_FEN else None,
            record.clock_source,
            record.local_result,
            self.settlement,
        )

    def event(self, terminal: TerminalInfo) -> ScanEvent:
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
        )


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


class ScanService:
    def __init__(
        self,
        core: Core,
        credentials: Credentials,
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
        self._core = core
        self._credentials = credentials
        self._issuer = credentials.trust.issuer
        self._refs = credentials.ankang.refs
        self.policies = policies
        self._guard = guard
        self._recorder = recorder
        self._residents = residents
        self.clock = clock
        self.events: ScanEventSink = events or NoScanEvents()
        self.settlement = settlement
        self.documents = documents
        self._names: dict[int, str] = {}
        self._verify_pool = ThreadPoolExecutor(VERIFY_THREADS, thread_name_prefix="scan-verify")

    def close(self) -> None:
        self._verify_pool.shutdown(wait=False, cancel_futures=True)

    @property
    def clock_skew_s(self) -> float:
        return self._credentials.trust.clock_skew_s

    async def _verify(self, payload: str, at: float, conn: asyncpg.Connection | None = None) -> VerifiedCode:
        trust = self._credentials.trust
        try:
            return trust.verifier.verify(payload, at)
        except CredentialError as exc:
            if exc.code == "credential.unknown_key" and await trust.recheck_for_unknown_key(conn):
                return trust.verifier.verify(payload, at)
            raise

    def _subject(self, code: VerifiedCode) -> Subject | None:
        if code.issuer != self._issuer or code.kind == "app_pass":
            return None
        return self._refs.open(code.subject_ref)

    def _revoked(self, code: VerifiedCode, before: float) -> bool:
        """The durable revocation list: revoked at or before `before`."""
        revocations = self._credentials.revocations
        at = revocations.revoked_at(code.issuer, "subject", code.subject_ref)
        if at is None and code.certificate_serial is not None:
            at = revocations.revoked_at(code.issuer, "device_certificate", code.certificate_serial)
        return at is not None and at.timestamp() <= before

    @staticmethod
    def _policy_reason(policy: ScenePolicy, code: VerifiedCode) -> str | None:
        if code.kind == "ride_code":
            return None if policy.accept_ride_codes else "policy.credential_type_not_allowed"
        if code.colour not in policy.allowed_colours:
            return "policy.color_not_allowed"
        return None

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

    # -- online ---------------------------------------------------------------------------------------------

    async def scan(self, terminal: TerminalInfo, payload: str, scanned_at: datetime) -> ScanOutcome:
        now = self.clock()
        scan_uuid = uuid7()
        scan_id = str(scan_uuid)
        policy = self.policies.for_scene(terminal.kind, terminal.scene)
        code: VerifiedCode | None = None
        subject: Subject | None = None
        answer_id = scan_id
        repeat = False
        spends: str | None = None  # set when this scan spends its code: the durable claim decides
        holder: int | None = None  # an app pass's holder
        result: str
        reason: str | None
        try:
            code = await self._verify(payload, now)
        except CredentialError as exc:
            result, reason = "reject", exc.code
        else:
            subject = self._subject(code)
            if code.app_pass is not None:
                # A pass (a ticket): the app bound to the scene decides what it admits, re-entries included,
                # so no replay guard stands between them; it only has to honour the pass at all.
                check = await self.events.check_pass(terminal.kind, terminal.scene, code.app_pass)
                result, reason = ("reject", check.reason) if check.reason else ("accept", None)
                holder = check.account_id
            elif code.kind == "ankang_code" and code.issuer == self._issuer and subject is None:
                result, reason = "reject", "credential.malformed"
            elif self._revoked(code, now):
                result, reason = "reject", "credential.revoked"
            else:
                policy_reason = self._policy_reason(policy, code)
                result, reason = ("reject", policy_reason) if policy_reason else ("accept", None)
                once = policy.replay == "once" or code.kind == "ride_code"
                replay_key: str | None = "scan:" + (
                    code.replay_key.hex() if once else f"{terminal.id}:{code.replay_key.hex()}"
                )
                if once and policy_reason is not None:
                    # A refused code was not spent: it may still pass where its colour is allowed.
                    replay_key = None
                ttl = max(1.0, code.expires_at - now + 2 * self.clock_skew_s)
                mark_key = generation_key(subject.account_id) if subject is not None else None
                # A code spent once anywhere is claimed durably with its record (below), and only there: here
                # such a scan reads its revocation mark alone.
                try:
                    earlier, mark = await self._guard.claim(
                        None if once else replay_key, _decision_value(result, reason, scan_id), ttl, mark_key
                    )
                except GUARD_UNREACHABLE as exc:
                    if not once:
                        raise  # an entry scene's only record of an earlier read is in Redis: 503, send again
                    # Redis is down: the durable claim below decides as always, and the revocation generation
                    # is read from PostgreSQL in place of its mark.
                    outage_log.failed("cache", f"scan replay fast path: {type(exc).__name__}")
                    earlier = None
                    mark = (
                        str(await self._credentials.ankang.generation(subject.account_id)).encode()
                        if subject is not None
                        else None
                    )
                if mark is not None and subject is not None and subject.generation < int(mark):
                    result, reason = "reject", "credential.revoked"
                elif earlier is not None:
                    # An entry scene: a terminal retrying (or a door reading a code twice) wants the first
                    # answer, id included: it is the same entry. The read is still recorded, as a repeat.
                    result, reason, answer_id = _parse_decision(earlier)
                    repeat = True
                elif once and replay_key is not None:
                    spends = replay_key
        account_id = subject.account_id if subject is not None else holder
        # A terminal clock off by more than the tolerance is flagged on the scan (stored, and in the answer):
        # the scan is still decided by our clock, but its scanned_at is not to be trusted.
        offset_ms = round((scanned_at.timestamp() - now) * 1000)
        clock_offset_ms = offset_ms if abs(offset_ms) > self.clock_skew_s * 1000 else None
        claimed = await self._recorder.record(
            (
                scan_uuid,
                terminal.id,
                datetime.fromtimestamp(now, UTC),
                scanned_at,
                "online",
                code.kind if code else None,
                code.issuer if code else None,
                code.subject_ref if code and code.subject_ref else None,
                account_id,
                code.colour if code else None,
                result,
                reason,
                repeat,
                clock_offset_ms,
            ),
            code.replay_key if spends is not None and code is not None else None,
        )
        if spends is not None:
            if not claimed:  # spent before: by an offline upload, or before this worker's Redis lost the key
                result, reason = "reject", "scan.replayed"
        miniapp = await self.events.scan_recorded(
            ScanEvent(
                scan_id,
                terminal.id,
                terminal.kind,
                terminal.scene,
                result,
                reason,
                code.kind if code else None,
                account_id,
                scanned_at,
                "online",
                unit=terminal.unit,
                issuer=code.issuer if code else None,
                app_pass=code.app_pass if code else None,
                colour=code.colour if code else None,
            )
        )
        name = None
        if (
            policy.show_name
            and account_id is not None
            and (result == "accept" or (reason or "").startswith("policy."))
        ):
            name = await self._masked_name(account_id)
        return ScanOutcome(
            answer_id,
            result,
            reason,
            code.colour if code else None,
            code.kind if code else None,
            name,
            repeat,
            code.expires_at if code else None,
            miniapp,
            clock_offset_ms,
        )

    # -- offline batches ------------------------------------------------------------------------------------

    async def upload_batch(self, terminal: TerminalInfo, batch: ScanBatch) -> ScanBatchResult:
        """Re-verify every record on the server, deduplicate by (terminal, record id), settle charges; one
        transaction, so a batch sent three times or on two workers at once is applied once.

        A batch costs a fixed handful of statements whatever its size: lock the terminal's records and find those
        stored before (while every record is verified on the verify pool), claim the spent codes, settle the
        ride charges in one call, and COPY each new record once with its decision.
        """
        records = batch.records
        if len(records) > MAX_BATCH_RECORDS:
            raise errors.BatchTooLarge(f"At most {MAX_BATCH_RECORDS} records per batch")
        policy = self.policies.for_scene(terminal.kind, terminal.scene)
        now = self.clock()
        received = datetime.fromtimestamp(now, UTC)
        answers: list[tuple[str, str | None]] = [("rejected", "scan.record_id_invalid")] * len(records)
        offline: list[_Offline] = []
        seen: set[str] = set()
        for i, record in enumerate(records):
            if 1 <= len(record.record_id) <= 64 and record.record_id not in seen:
                # The same record twice in one upload: the first decides, and both get its verdict.
                seen.add(record.record_id)
                offline.append(_Offline(i, record, received))
        events: list[ScanEvent] = []
        # The signatures are checked on the verify pool while this worker opens the transaction, takes the
        # terminal's lock and finds the records stored before: those round trips overlap the CPU work.
        checked = self._offline_checks(offline, now)
        verifying = asyncio.ensure_future(self._offline_signatures(checked))
        try:
            async with self._core.db.transaction() as conn:
                # Uploads from one terminal take turns, so the same upload sent again or on two workers at once
                # finds the first one's records stored: each record is decided, settled and stored once.
                await repository.lock_offline_records(conn, terminal.id)
                stored = await repository.stored_offline_records(
                    conn, terminal.id, [o.record.record_id for o in offline]
                )
                await self._offline_verdicts(conn, terminal, checked, await verifying, policy)
                mine = [o for o in offline if o.record.record_id not in stored]
                await self._offline_replays(conn, mine, received)
                await self._settle(conn, terminal, mine)
                await repository.copy_scans(
                    conn, [o.row(terminal.id, received) for o in mine], repository.OFFLINE_SCAN_COLUMNS
                )
        finally:
            if not verifying.done():  # the transaction failed first: the verdicts are not wanted
                verifying.cancel()
        # A record stored before (an upload cut after its commit, sent again) gets its original verdict: the
        # terminal learns what happened to each scan whichever upload it hears the answer of.
        verdicts = {
            record_id: ("accepted" if result == "accept" else "rejected", reason)
            for record_id, (result, reason) in stored.items()
        }
        for o in mine:
            verdicts[o.record.record_id] = ("accepted" if o.reason is None else "rejected", o.reason)
            events.append(o.event(terminal))
        for i, record in enumerate(records):
            answers[i] = verdicts.get(record.record_id, answers[i])
        for event in events:
            await self.events.scan_recorded(event)
        results = [
            ScanRecordResult(record_id=r.record_id, status=status, reason=reason)  # type: ignore[arg-type]
            for r, (status, reason) in zip(records, answers, strict=True)
        ]
        return ScanBatchResult(batch_id=batch.batch_id, results=results)

    def _offline_checks(self, offline: list[_Offline], now: float) -> list[_Offline]:
        """The terminal's clock and the amount; returns the records whose signatures are worth checking."""
        checked: list[_Offline] = []
        for o in offline:
            at = o.at
            if (
                not at == at or at > now + self.clock_skew_s
            ):  # NaN or in the future: the terminal clock is wrong
                o.reason = "scan.clock_invalid"
            elif at < now - MAX_OFFLINE_AGE_S:
                o.reason = "scan.too_old"
            elif not 0 <= o.record.amount_fen <= MAX_OFFLINE_AMOUNT_FEN:
                o.reason = "scan.amount_invalid"
            else:
                checked.append(o)
        return checked

    async def _offline_signatures(self, checked: list[_Offline]) -> list[VerifiedCode | CredentialError]:
        """Verify the records' codes: CPU only, no database, so it can run while the transaction waits on locks.

        Large uploads are checked on a small thread pool: libsodium (yima_sdk._ed25519) releases the GIL while
        verifying, so a large upload uses every core of the machine while this worker's event loop keeps serving.
        """
        items = [(o.record.payload, o.at) for o in checked]
        verifier = self._credentials.trust.verifier
        if len(items) < PARALLEL_VERIFY_MIN:
            return verifier.verify_many(items)
        loop = asyncio.get_running_loop()
        step = -(-len(items) // VERIFY_THREADS)
        parts = await asyncio.gather(
            *(
                loop.run_in_executor(self._verify_pool, verifier.verify_many, items[i : i + step])
                for i in range(0, len(items), step)
            )
        )
        return [v for part in parts for v in part]

    async def _offline_verdicts(
        self,
        conn: asyncpg.Connection,
        terminal: TerminalInfo,
        checked: list[_Offline],
        verdicts: list[VerifiedCode | CredentialError],
        policy: ScenePolicy,
    ) -> None:
        """Each verified record's subject, revocation and policy; in the upload's transaction (`conn`)."""
        for o, verdict in zip(checked, verdicts, strict=True):
            if isinstance(verdict, CredentialError):
                if verdict.code != "credential.unknown_key":
                    o.reason = verdict.code
                    continue
                try:  # a key newer than this worker's trust list: refresh it once (on `conn`), then decide
                    verdict = await self._verify(o.record.payload, o.at, conn)
                except CredentialError as exc:
                    o.reason = exc.code
                    continue
            code = verdict
            o.code, o.subject = code, self._subject(code)
            if code.app_pass is not None:  # as online: the bound app honours the pass or not, and decides
                check = await self.events.check_pass(terminal.kind, terminal.scene, code.app_pass)
                o.reason, o.holder = check.reason, check.account_id
            elif code.kind == "ankang_code" and code.issuer == self._issuer and o.subject is None:
                o.reason = "credential.malformed"
            elif self._revoked(code, o.at + self.clock_skew_s):
                o.reason = "credential.revoked"
            else:
                # Offline, a code spent once anywhere (payment scenes, every ride code) is claimed durably; an
                # entry scene accepts the same code again, as the terminal itself did. A code the scene's policy
                # refuses is not spent, as online: it may still pass where its colour is allowed.
                o.reason = self._policy_reason(policy, code)
                o.spends = o.reason is None and (policy.replay == "once" or code.kind == "ride_code")

    async def _offline_replays(
        self, conn: asyncpg.Connection, mine: list[_Offline], received: datetime
    ) -> None:
        spending: dict[bytes, _Offline] = {}
        for o in mine:
            if o.spends and o.code is not None:
                if o.code.replay_key in spending:  # spent earlier in this same upload
                    o.reason = "scan.replayed"
                else:
                    spending[o.code.replay_key] = o
        claimed = await repository.claim_replays(
            conn, [(key, o.scan_id) for key, o in spending.items()], received
        )
        for key, o in spending.items():
            if key not in claimed:
                o.reason = "scan.replayed"

    async def _settle(self, conn: asyncpg.Connection, terminal: TerminalInfo, mine: list[_Offline]) -> None:
        """Every accepted ride charge of the batch in one call to the one-card domain, in this transaction, each
        re-priced by the fare table in force at the ride (scans/fares.py)."""
        charged = [
            o
            for o in mine
            if o.reason is None
            and o.code is not None
            and o.code.kind == "ride_code"
            and o.code.certificate_serial is not None
            and o.record.amount_fen > 0
        ]
        fares = await reprice(
            conn, self.documents, terminal, [(o.scanned_at, o.record.amount_fen) for o in charged]
        )
        amounts = [o.record.amount_fen for o in charged] if fares is None else [f.amount_fen for f in fares]
        charges: list[OfflineCharge] = []
        settling: list[_Offline] = []
        for o, amount in zip(charged, amounts, strict=True):
            if amount is None:  # the published tables have no fare for it: nothing is taken, and it says so
                o.reason, o.settlement = UNPRICED, "rejected"
            elif amount == 0:  # free by the table in force (the terminal asked more): nothing to charge
                o.settled_fen = 0
            else:
                settling.append(o)
                charges.append(
                    OfflineCharge(
                        account_ref=o.code.subject_ref,  # type: ignore[union-attr]
                        device_certificate_serial=o.code.certificate_serial,  # type: ignore[union-attr,arg-type]
                        amount_fen=amount,
                        record_id=o.record.record_id,
                        terminal_id=terminal.id,
                        scanned_at=o.scanned_at,
                        terminal_fen=None if fares is None else o.record.amount_fen,
                    )
                )
        if not charges:
            return
        outcomes = await self.settlement.settle_offline_charges(conn, charges)
        for o, charge, outcome in zip(settling, charges, outcomes, strict=True):
            if outcome.status == "rejected":
                o.reason, o.settlement = outcome.reason or "settlement.rejected", "rejected"
            else:
                o.settlement = outcome.status
                if outcome.status == "settled":
                    o.settled_fen, o.rider = charge.amount_fen, outcome.account_id

    async def my_scans(self, conn: asyncpg.Connection, account_id: int, limit: int) -> list[asyncpg.Record]:
        return await repository.scans_of_account(conn, account_id, limit)
