"""Offline uploads: a terminal's batch of records it decided on its own, re-verified here, deduplicated by
(terminal, record id), their ride charges settled through the one-card port, stored in one transaction.

A batch costs a fixed handful of statements whatever its size: lock the terminal's records and find those stored
before (while every record is verified on the verify pool), claim the spent codes, settle the ride charges in one
call, COPY each new record once with its decision, and COPY the events of the accepted ones for the scene's app
into the outbox (outbox.py: delivered at least once). So a batch sent three times or on two workers at once is
applied once.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import asyncpg
from yima_sdk._stops import valid_stop
from yima_sdk.codes import CredentialError, VerifiedCode
from yima_sdk.terminal import ScanBatch, ScanBatchResult

from server.db import Database
from server.terminals import errors, repository
from server.terminals.events import ScanEventSink
from server.terminals.policies import ScenePolicy
from server.terminals.ports import (
    OfflineCharge,
    OfflineSettlement,
    PartnerCertificate,
    SceneDocuments,
)
from server.terminals.registry import TerminalInfo
from server.terminals.scans import outbox_repository
from server.terminals.scans.checks import CodeChecks
from server.terminals.scans.fares import UNPRICED, reprice
from server.terminals.scans.offline_records import (
    MAX_OFFLINE_AMOUNT_FEN,
    OfflineRecord,
    answers,
    distinct,
    scan_order,
)
from server.terminals.scans.outbox_repository import LiveTake, Turn

MAX_BATCH_RECORDS = 1000
MAX_OFFLINE_AGE_S = 7 * 86400
VERIFY_THREADS = 2
PARALLEL_VERIFY_MIN = 64
"""Smaller uploads are verified on the event loop: handing them to threads would cost more than it saves."""


class OfflineUploads:
    def __init__(
        self, db: Database, checks: CodeChecks, settlement: OfflineSettlement, documents: SceneDocuments
    ) -> None:
        self._db = db
        self._checks = checks
        self.settlement = settlement
        self._documents = documents
        self._verify_pool = ThreadPoolExecutor(VERIFY_THREADS, thread_name_prefix="scan-verify")

    def close(self) -> None:
        self._verify_pool.shutdown(wait=False, cancel_futures=True)

    async def upload(
        self,
        terminal: TerminalInfo,
        batch: ScanBatch,
        policy: ScenePolicy,
        now: float,
        events: ScanEventSink,
        take: LiveTake | None = None,
    ) -> tuple[ScanBatchResult, Turn | None]:
        """Each record's verdict, in the batch's order; the events for the app bound to the scene of the records
        this upload accepted are written to the outbox (outbox.py) in the upload's transaction, and the terminal
        is taken as `take` says: the turn returned when the caller is to deliver them after the commit."""
        records = batch.records
        if len(records) > MAX_BATCH_RECORDS:
            raise errors.BatchTooLarge(f"At most {MAX_BATCH_RECORDS} records per batch")
        received = datetime.fromtimestamp(now, UTC)
        offline = distinct(records, received)
        # The signatures are checked on the verify pool while this worker opens the transaction, takes the
        # terminal's lock and finds the records stored before: those round trips overlap the CPU work.
        checked = self._before_signatures(offline, now)
        verifying = asyncio.ensure_future(self._signatures(checked))
        try:
            async with self._db.transaction() as conn:
                # Uploads from one terminal take turns, so the same upload sent again or on two workers at once
                # finds the first one's records stored: each record is decided, settled and stored once.
                await repository.lock_offline_records(conn, terminal.id)
                stored = await repository.stored_offline_records(
                    conn, terminal.id, [o.record.record_id for o in offline]
                )
                await self._verdicts(conn, terminal, checked, await verifying, policy, events)
                mine = [o for o in offline if o.record.record_id not in stored]
                await self._replays(conn, mine, received)
                app_id = events.bound_app(terminal.kind, terminal.scene)
                await self._settle(conn, terminal, mine, app_id)
                await self._tap_off_riders(conn, mine)
                await repository.copy_scans(
                    conn, [o.stored(terminal.id, received) for o in mine], offline=True
                )
                # the app hears them in ride-time order (one after another), whatever the upload's; at least
                # once: each is kept until the app's handler returned
                heard: list[OfflineRecord] = (
                    [] if app_id is None else sorted((o for o in mine if o.reason is None), key=scan_order)
                )
                take = take or LiveTake(received, None)
                turn = await outbox_repository.insert(
                    conn,
                    terminal.id,
                    [o.event(terminal, self._checks.issuer) for o in heard],
                    received,
                    run_at=take.run_at,
                    token=take.token,
                )
        finally:
            if not verifying.done():  # the transaction failed first: the verdicts are not wanted
                verifying.cancel()
        result = ScanBatchResult(batch_id=batch.batch_id, results=answers(records, stored, mine))
        return result, turn

    def _before_signatures(self, offline: list[OfflineRecord], now: float) -> list[OfflineRecord]:
        """The terminal's clock and the amount; returns the records whose signatures are worth checking."""
        checked: list[OfflineRecord] = []
        for o in offline:
            at = o.at
            if (
                not at == at or at > now + self._checks.clock_skew_s
            ):  # NaN or in the future: its clock is wrong
                o.reason = "scan.clock_invalid"
            elif at < now - MAX_OFFLINE_AGE_S:
                o.reason = "scan.too_old"
            elif not 0 <= o.record.amount_fen <= MAX_OFFLINE_AMOUNT_FEN or (
                o.record.tap == "off" and o.record.amount_fen
            ):  # a tap-off charges nothing
                o.reason = "scan.amount_invalid"
            elif o.record.stop is not None and not valid_stop(o.record.stop):
                o.reason = "scan.stop_invalid"
            else:
                checked.append(o)
        return checked

    async def _signatures(self, checked: list[OfflineRecord]) -> list[VerifiedCode | CredentialError]:
        """Verify the records' codes: CPU only, no database, so it can run while the transaction waits on locks.

        Large uploads are checked on a small thread pool: libsodium (yima_sdk._ed25519) releases the GIL while
        verifying, so a large upload uses every core of the machine while this worker's event loop keeps serving.
        """
        items = [(o.record.payload, o.at) for o in checked]
        verifier = self._checks.credentials.trust.verifier
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

    async def _verdicts(
        self,
        conn: asyncpg.Connection,
        terminal: TerminalInfo,
        checked: list[OfflineRecord],
        verdicts: list[VerifiedCode | CredentialError],
        policy: ScenePolicy,
        events: ScanEventSink,
    ) -> None:
        """Each verified record's subject, revocation and policy; in the upload's transaction (`conn`)."""
        checks = self._checks
        for o, verdict in zip(checked, verdicts, strict=True):
            if isinstance(verdict, CredentialError):
                if verdict.code != "credential.unknown_key":
                    o.reason = verdict.code
                    continue
                try:  # a key newer than this worker's trust list: refresh it once (on `conn`), then decide
                    verdict = await checks.verify(o.record.payload, o.at, conn)
                except CredentialError as exc:
                    o.reason = exc.code
                    continue
            code = verdict
            o.code, o.subject = code, checks.subject(code)
            if code.app_pass is not None:  # as online: the bound app honours the pass or not, and decides
                check = await events.check_pass(terminal.kind, terminal.scene, code.app_pass)
                o.reason, o.holder = check.reason, check.account_id
                continue
            o.reason = checks.refusal(code, o.subject, o.at + checks.clock_skew_s)
            if o.reason is None:
                # Offline, a code spent once anywhere (payment scenes, every ride code) is claimed durably; an
                # entry scene accepts the same code again, as the terminal itself did. A code the scene's policy
                # refuses is not spent, as online: it may still pass where its colour is allowed.
                o.reason = checks.policy_reason(policy, code)
                o.spends = o.reason is None and checks.spends(policy, code)

    async def _replays(self, conn: asyncpg.Connection, mine: list[OfflineRecord], received: datetime) -> None:
        """Claim the codes these records spend, durably; a code spent before (or earlier in this upload) is
        refused as `scan.replayed`."""
        spending: dict[bytes, OfflineRecord] = {}
        for o in mine:
            if o.spends and o.code is not None:
                if o.claim in spending:  # spent earlier in this same upload
                    o.reason = "scan.replayed"
                else:
                    spending[o.claim] = o
        claimed = await repository.claim_replays(
            conn, [(key, o.scan_id) for key, o in spending.items()], received
        )
        for key, o in spending.items():
            if key not in claimed:
                o.reason = "scan.replayed"

    async def _settle(
        self, conn: asyncpg.Connection, terminal: TerminalInfo, mine: list[OfflineRecord], app_id: str | None
    ) -> None:
        """Every accepted ride charge of the batch in one call to the settlement port, in this transaction, each
        re-priced by the fare table in force at the ride (scans/fares.py); `app_id`, bound to the terminal's
        scene, may refund part of each ride later (the rider's concession, transfer or cap)."""
        charged = [o for o in mine if o.charged]
        fares = await reprice(
            conn, self._documents, terminal, [(o.scanned_at, o.record.amount_fen) for o in charged]
        )
        amounts = [o.record.amount_fen for o in charged] if fares is None else [f.amount_fen for f in fares]
        charges: list[OfflineCharge] = []
        settling: list[OfflineRecord] = []
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
                        scan_id=str(o.scan_id),
                        app_id=app_id,
                        partner=self._partner(o.code),  # type: ignore[arg-type]
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

    async def _tap_off_riders(self, conn: asyncpg.Connection, mine: list[OfflineRecord]) -> None:
        """Whose one-card each accepted tap-off of one of our ride codes is (a tap-off charges nothing, so
        settlement does not say): the app bound to the scene finds the rider's ride by it."""
        tapping = [
            o
            for o in mine
            if o.reason is None
            and o.record.tap == "off"
            and o.code is not None
            and o.code.kind == "ride_code"
            and o.code.certificate_serial is not None
            and o.code.issuer == self._checks.issuer
        ]
        if not tapping:
            return
        owners = await self.settlement.ride_code_owners(
            conn,
            [o.code.certificate_serial for o in tapping],  # type: ignore[union-attr,misc]
        )
        for o in tapping:
            o.rider = owners.get(o.code.certificate_serial)  # type: ignore[union-attr,arg-type]

    def _partner(self, code: VerifiedCode) -> PartnerCertificate | None:
        """A partner county's certificate (one on the trust list, allowed `device_certificate`, as the verifier
        checked), None for ours."""
        if code.issuer == self._checks.issuer:
            return None
        return PartnerCertificate(
            issuer=code.issuer,
            issued_at=datetime.fromtimestamp(code.issued_at, UTC),
            expires_at=datetime.fromtimestamp(code.expires_at, UTC),
            max_offline_uses=code.max_offline_uses or 0,
            max_offline_amount_fen=code.max_offline_amount_fen or 0,
        )
