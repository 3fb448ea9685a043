"""`Terminal`: offline-first scanning for bus, clinic, pharmacy, scenic-gate and counter devices.

A scan is decided locally (trust list + revocations + `Verifier`), written to SQLite, and only then
answered. `scan_many` is group commit: several scans (several readers, or a queue that built up while
the previous commit was on disk) share one fsync, and none of them is answered before that fsync.
Uploads run whenever the terminal is online and resume after a cut connection, because a record is
marked uploaded only when the server's answer names it.

The terminal keeps its own clock's offset from the server's, learned at each sync from a root-signed time
(`sync_clock`, called by `refresh`) and kept in the SQLite file: scans are decided and stamped by the corrected
time, so a terminal whose clock runs a minute slow still accepts valid codes.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Final, Literal

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from yima_sdk.codes import CredentialError, VerifiedCode, Verifier
from yima_sdk.contract import FARES_DOCUMENT
from yima_sdk.documents import DocumentError, TerminalDocument, documents_etag, in_force
from yima_sdk.fares import FareSchedule, FareState, FareTable, Ride, Rider, settlement_fare
from yima_sdk.terminal._clock import verify_server_time
from yima_sdk.terminal._store import RecordRow, ScanStore
from yima_sdk.terminal._transport import HttpTransport, Transport, TransportError
from yima_sdk.terminal._wire import ClockSource, ScanBatch, ScanBatchResult, ScanRecord
from yima_sdk.trust import RevocationError, RevocationSet, TrustList, decode_revocation_delta

__all__ = ["PendingScans", "ScanDecision", "Terminal", "TerminalError"]

_TRUST_LIST_KEY: Final = "trust_list"
_CLOCK_OFFSET_KEY: Final = "clock_offset_ms"
_DOCUMENTS_KEY: Final = "documents"
_documents_codec = msgspec.msgpack.Decoder(list[bytes])
_documents_list = msgspec.json.Decoder(dict[str, list[msgspec.Raw]])
_ANYONE: Final = Rider()
"""Offline, the terminal knows nothing of the rider: no concession, no earlier rides (settlement re-prices)."""
_NO_RIDES: Final = FareState()
_batch_encoder = msgspec.json.Encoder()
_batch_result_decoder = msgspec.json.Decoder(ScanBatchResult)


class TerminalError(Exception):
    """The terminal cannot decide: `terminal.no_trust_list` (never refreshed and nothing stored)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


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


class _Group:
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


class PendingScans:
    """The decisions of a `Terminal.submit_many` group, handed out only once their records are durable."""

    __slots__ = ("_group", "_terminal")

    def __init__(self, terminal: Terminal, group: _Group) -> None:
        self._terminal = terminal
        self._group = group

    def result(self) -> list[ScanDecision]:
        """Wait for this group's commit; raises `sqlite3.Error` if it failed (then nothing was recorded)."""
        group = self._group
        if self._terminal._inflight is group:
            self._terminal._settle()
        else:
            assert group.commit is not None
            group.commit.result()
        return group.decisions


class Terminal:
    """An offline-capable scanning terminal bound to one SQLite file and one pinned root key set."""

    def __init__(
        self,
        *,
        root_public_keys: Mapping[str, Ed25519PublicKey | bytes],
        db_path: str,
        clock: Callable[[], float],
        clock_source: ClockSource,
        transport: Transport | None = None,
        clock_skew_s: float = 30.0,
        ride_window_s: float = 60.0,
        replay_window_s: float = 5.0,
        upload_batch_size: int = 200,
        app_id: str | None = None,
    ) -> None:
        self._roots = dict(root_public_keys)
        self._app_id = app_id
        self._clock = clock
        self._clock_source: ClockSource = clock_source
        self._transport = transport
        self._skew = clock_skew_s
        self._ride_window = ride_window_s
        self._replay_window = replay_window_s
        # Ride codes are remembered for as long as their timestamp could still pass the stale check,
        # so a ride code shown twice is refused as a repeat, not re-charged.
        self._ride_memory = ride_window_s + 2 * clock_skew_s + replay_window_s
        self._upload_batch_size = upload_batch_size
        self._store = ScanStore(db_path)
        self._revocations: RevocationSet = self._store.load_revocations()
        self._spent: dict[bytes, int] = self._store.offline_spent()
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
        self._trust_list: TrustList | None = None
        self._verifier: Verifier | None = None
        self._inflight: _Group | None = None  # the submit_many group whose commit may still be running
        self._committer: ThreadPoolExecutor | None = None
        stored = self._store.get_state(_TRUST_LIST_KEY)
        if stored is not None:
            self._install(TrustList.verify(stored, self._roots))
        offset = self._store.get_state(_CLOCK_OFFSET_KEY)
        self._clock_offset_s = int(offset) / 1000 if offset is not None else 0.0
        self._documents: dict[tuple[str, int], TerminalDocument] = {}
        self._documents_etag: str | None = None
        self._fares: FareSchedule | None = None
        held = self._store.get_state(_DOCUMENTS_KEY)
        if held is not None:
            self._install_documents(
                [TerminalDocument.verify(envelope, self._roots) for envelope in _documents_codec.decode(held)]
            )
        if isinstance(transport, HttpTransport):
            # It signs in with our corrected time, and asks us to sync when a sign-in is refused for its time.
            transport.clock_offset_s = self._clock_offset_s
            transport.clock_sync = self.sync_clock

    # -- clock ------------------------------------------------------------------------------------------

    @property
    def clock_offset_s(self) -> float:
        """What this terminal adds to its own clock to read the server's time (0 until the first sync)."""
        return self._clock_offset_s

    def now(self) -> float:
        """The corrected time: the terminal's clock plus the offset learned at the last sync."""
        return self._clock() + self._clock_offset_s

    def sync_clock(self) -> float:
        """Ask the server's time (root-signed, bound to a fresh nonce), keep the offset; returns it in seconds.

        The offset is taken against the middle of the round trip, so it is right to within half the round trip.
        Raises `TransportError`, or `TrustListError` (`time.*`) for an answer that is not the server's."""
        transport = self._require_transport()
        nonce = secrets.token_urlsafe(16)
        sent = self._clock()
        body = transport.fetch_server_time(nonce, int(sent * 1000))
        received = self._clock()
        server = verify_server_time(body, self._roots, nonce) / 1000
        offset = server - (sent + received) / 2
        self._settle()
        self._store.set_state(_CLOCK_OFFSET_KEY, str(round(offset * 1000)).encode())
        self._clock_offset_s = round(offset * 1000) / 1000
        if isinstance(transport, HttpTransport):
            transport.clock_offset_s = self._clock_offset_s
        return self._clock_offset_s

    # -- trust list and revocations -------------------------------------------------------------

    @property
    def trust_list(self) -> TrustList | None:
        return self._trust_list

    @property
    def revocations(self) -> RevocationSet:
        return self._revocations

    def _install(self, trust_list: TrustList) -> None:
        self._trust_list = trust_list
        self._verifier = Verifier(trust_list, clock_skew_s=self._skew, ride_window_s=self._ride_window)

    def load_trust_list(self, envelope: bytes) -> TrustList:
        """Verify and install a trust list envelope (e.g. delivered on a USB stick); refuse rollback."""
        trust_list = TrustList.verify(envelope, self._roots, held=self._trust_list)
        self._settle()
        if self._trust_list is None or trust_list.document != self._trust_list.document:
            self._store.set_state(_TRUST_LIST_KEY, envelope)
            self._install(trust_list)
        return trust_list

    # -- documents its scene's app publishes (the fare table) ------------------------------------------

    @property
    def app_id(self) -> str | None:
        """The app bound to this terminal's scene (the scene registered for it): the only app whose documents it
        applies. None: it applies none."""
        return self._app_id

    def documents(self, name: str) -> list[TerminalDocument]:
        """Every held version of document `name`, oldest effective first."""
        found = [d for (n, _), d in self._documents.items() if n == name]
        return sorted(found, key=lambda d: (d.effective_from, d.version))

    def document(self, name: str, at: float | None = None) -> TerminalDocument | None:
        """The version of `name` in force at `at` (Unix seconds; default: the terminal's corrected time now)."""
        return in_force(self.documents(name), self.now() if at is None else at)

    def load_documents(self, body: bytes) -> int:
        """Verify and keep a `GET /v1/terminal/documents` answer: each version signed by a pinned root key,
        published by this terminal's app (`app_id`), and no held version replaced by other content; a `fares`
        version must be a fare table the engine prices with. All or nothing: one bad document keeps what was
        held. Returns how many versions are held. Raises DocumentError (FareError for a fare table)."""
        try:
            envelopes = [bytes(raw) for raw in _documents_list.decode(body).get("documents", [])]
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise DocumentError(f"terminal documents: malformed: {exc}") from None
        merged = dict(self._documents)
        for envelope in envelopes:
            document = TerminalDocument.verify(envelope, self._roots)
            if document.app_id != self._app_id:
                raise DocumentError(
                    f"terminal document: {document.name} of {document.app_id}, not of this terminal's app"
                )
            key = (document.name, document.version)
            held = merged.get(key)
            if held is not None and (held.effective_from, held.content) != (
                document.effective_from,
                document.content,
            ):
                raise DocumentError(f"terminal document: {document.name} version {document.version} replaced")
            if held is None:
                merged[key] = document
        fares = _schedule(merged.values())  # FareError before anything is kept
        self._settle()
        self._store.set_state(_DOCUMENTS_KEY, msgspec.msgpack.encode([d.envelope for d in merged.values()]))
        self._documents, self._fares = merged, fares
        return len(merged)

    def _install_documents(self, documents: list[TerminalDocument]) -> None:
        self._documents = {(d.name, d.version): d for d in documents if d.app_id == self._app_id}
        self._fares = _schedule(self._documents.values())

    def sync_documents(self) -> int:
        """Fetch this terminal's app's documents (by ETag) and keep them (`load_documents`); `refresh` calls it.
        Returns how many versions are held. Raises TransportError, DocumentError, FareError."""
        transport = self._require_transport()
        body = transport.fetch_documents(self._documents_etag)
        if body is not None:
            self.load_documents(body)
            self._documents_etag = documents_etag(body)
        return len(self._documents)

    @property
    def fares(self) -> FareSchedule | None:
        """The fare tables this terminal prices offline rides with (its app's `fares` documents), None before
        any."""
        return self._fares

    def fare(self, line: str, board: str | None = None, alight: str | None = None) -> int:
        """The fare in fen of a boarding of `line` now, as the fare engine prices it offline: the table in force
        at the terminal's time, without the rider's concessions, transfers or caps (settlement applies those).
        Raises TerminalError `terminal.no_fares` before its app published a fare table (and the terminal synced
        it), FareError for an unknown line or stop, or before the first version is in force."""
        if self._fares is None:
            raise TerminalError("terminal.no_fares")
        at = dt.datetime.fromtimestamp(self._clock() + self._clock_offset_s, dt.UTC)
        if board is None and alight is None:
            return settlement_fare(
                self._fares, line, at
            )  # the boarding fare, exactly as settlement re-prices it
        ride = Ride(ride_id="", at=at, line=line, board=board, alight=alight)
        return self._fares.price(ride, _ANYONE, _NO_RIDES)[0].fare_fen

    def apply_revocations(self, body: bytes, issuer: int) -> None:
        """Apply and store one `GET /v1/revocations` body that answered a request for `issuer`."""
        delta, added = decode_revocation_delta(body)
        if delta.issuer != issuer:
            raise RevocationError("revocation.malformed", "delta for another issuer")
        self._settle()
        self._revocations.apply_delta(issuer, delta.since, delta.version, added)
        self._store.save_revocations(issuer, delta.since == 0, delta.version, added)

    def refresh(self) -> None:
        """Learn the server's time (`sync_clock`), fetch the trust list (by ETag), every issuer's revocation
        delta and, with an `app_id`, its app's documents (`sync_documents`). Raises `TransportError`."""
        transport = self._require_transport()
        self.sync_clock()
        envelope = transport.fetch_trust_list(self._trust_list.etag if self._trust_list else None)
        if envelope is not None:
            self.load_trust_list(envelope)
        if self._trust_list is None:
            raise TerminalError("terminal.no_trust_list")
        for issuer in sorted({e.issuer for e in self._trust_list.entries}):
            body = transport.fetch_revocations(issuer, self._revocations.version(issuer))
            self.apply_revocations(body, issuer)
        if self._app_id is not None:
            self.sync_documents()

    def _require_transport(self) -> Transport:
        if self._transport is None:
            raise TransportError("no transport configured")
        return self._transport

    # -- scanning -----------------------------------------------------------------------------------

    def scan(self, payload: str, amount_fen: int = 0) -> ScanDecision:
        """Decide one scan offline; returns after its record is durable."""
        return self.scan_many([(payload, amount_fen)])[0]

    def scan_many(self, scans: Iterable[tuple[str, int]]) -> list[ScanDecision]:
        """Decide several scans (payload, amount in fen) with one durable commit for all their records."""
        group = self._decide(scans)
        self._settle()
        self._store.add_records(group.rows, int(group.now * 1000), self._clock_source, group.spent)
        self._publish(group)
        return group.decisions

    def submit_many(self, scans: Iterable[tuple[str, int]]) -> PendingScans:
        """Pipelined `scan_many`: decide this group while the previous group's commit is on disk.

        Verifies the scans (the previous group's fsync runs meanwhile on the commit thread), waits
        for that commit, writes this group's records and starts their commit on the commit thread.
        `PendingScans.result()` gives the decisions once their records are durable, never earlier.
        A reader loop submits the group that queued up, answers the previous group, and so on.
        """
        group = self._decide(scans)
        self._settle()
        self._store.stage_records(group.rows, int(group.now * 1000), self._clock_source, group.spent)
        if self._committer is None:
            self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="yima-terminal-commit")
        group.commit = self._committer.submit(self._store.commit_records)
        self._inflight = group
        return PendingScans(self, group)

    def _settle(self) -> None:
        """Wait for the group being committed; once durable, its replay and spending state count."""
        group = self._inflight
        if group is None:
            return
        self._inflight = None
        assert group.commit is not None
        group.commit.result()  # raises if the commit failed: that group was never durable
        self._publish(group)

    def _publish(self, group: _Group) -> None:
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

    def _decide(self, scans: Iterable[tuple[str, int]]) -> _Group:
        """Decide a group of scans and build their records; nothing is written or published yet."""
        verifier = self._verifier
        if verifier is None:
            raise TerminalError("terminal.no_trust_list")
        now = self._clock() + self._clock_offset_s
        self._forget_before(now)
        revocations = self._revocations
        recent = self._recent
        spent = self._spent
        # The group still being committed (submit_many) is not published yet, but its scans happened
        # first: a code repeated from it, or spending on the same certificate, must count.
        inflight = self._inflight
        ahead_recent = inflight.recent if inflight is not None else {}
        ahead_spent = inflight.spent if inflight is not None else {}
        replay_window = self._replay_window
        batch_spent: dict[bytes, int] = {}
        batch_recent: dict[bytes, ScanDecision] = {}
        decisions: list[ScanDecision] = []
        rows: list[RecordRow] = []
        prefix = self._id_prefix
        counter = self._id_counter
        scans = list(scans)
        # The whole group is verified first (all its signatures back to back), then decided in order.
        verdicts = verifier.verify_many([(payload, now) for payload, _ in scans], revocations=revocations)
        for (payload, amount_fen), verdict in zip(scans, verdicts, strict=True):
            code: VerifiedCode | None = None
            if isinstance(verdict, CredentialError):
                result: Literal["accept", "reject"] = "reject"
                reason: str | None = verdict.code
            else:
                code = verdict
                key = code.replay_key
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
                batch_recent[code.replay_key] = decision
            decisions.append(decision)
            rows.append((record_id, payload, amount_fen, result, reason))
        self._id_counter = counter
        return _Group(now, decisions, rows, batch_recent, batch_spent)

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

    # -- upload -------------------------------------------------------------------------------------

    def pending_count(self) -> int:
        self._settle()
        return self._store.pending_count()

    def server_verdict(self, record_id: str) -> tuple[str | None, str | None] | None:
        """(server status, reason) once uploaded, (None, None) while pending, None if unknown."""
        self._settle()
        return self._store.server_verdict(record_id)

    def upload_pending(self) -> int:
        """Upload pending records in batches until none is left; returns how many the server acknowledged.

        A cut connection raises `TransportError` after marking what was acknowledged so far; the
        unacknowledged records stay pending and go again next time (the server deduplicates by record id).
        """
        transport = self._require_transport()
        self._settle()  # only durable records go up
        acknowledged = 0
        while True:
            rows = self._store.pending(self._upload_batch_size)
            if not rows:
                return acknowledged
            batch = ScanBatch(
                batch_id=str(uuid.uuid4()),
                records=[
                    ScanRecord(
                        record_id=r[1],
                        payload=r[2],
                        scanned_at=r[3],
                        clock_source=r[4],  # type: ignore[arg-type]  # written by us from ClockSource
                        amount_fen=r[5],
                        local_result=r[6],  # type: ignore[arg-type]
                        local_reason=r[7],
                    )
                    for r in rows
                ],
            )
            answer = transport.upload_batch(_batch_encoder.encode(batch))
            try:
                result = _batch_result_decoder.decode(answer)
            except msgspec.DecodeError as exc:
                raise TransportError(f"unreadable batch answer: {exc}") from exc
            group_of = {r[1]: r[0] for r in rows}
            done = [
                (group_of[r.record_id], r.record_id, r.status, r.reason)
                for r in result.results
                if r.record_id in group_of
            ]
            self._store.mark_uploaded(done)
            acknowledged += len(done)
            if not done:
                # The server acknowledged nothing: stop rather than spin; the records stay pending.
                raise TransportError("server acknowledged no record of the batch")

    def close(self) -> None:
        try:
            self._settle()
        finally:
            if self._committer is not None:
                self._committer.shutdown()
            self._store.close()


def _schedule(documents: Iterable[TerminalDocument]) -> FareSchedule | None:
    """The fare schedule of the held `fares` versions, None without any; FareError for one that is no table."""
    tables = [FareTable.from_json(d.content) for d in documents if d.name == FARES_DOCUMENT]
    return FareSchedule(tables) if tables else None
