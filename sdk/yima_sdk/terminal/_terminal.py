"""`Terminal`: offline-first scanning for bus, clinic, pharmacy, scenic-gate and counter devices.

A scan is decided locally (trust list + revocations + `Verifier`), written to SQLite, and only then
answered. `scan_many` is group commit: several scans (several readers, or a queue that built up while
the previous commit was on disk) share one fsync, and none of them is answered before that fsync.
Uploads run whenever the terminal is online and resume after a cut connection, because a record is
marked uploaded only when the server's answer names it.

The terminal keeps its own clock's offset from the server's, learned at each sync from a root-signed time
(`sync_clock`, called by `refresh`) and kept in the SQLite file: scans are decided and stamped by the corrected
time, so a terminal whose clock runs a minute slow still accepts valid codes.

Its parts: the decisions and the replay memory behind them (`_decisions.py`), the app's documents and offline
fares (`_documents.py`), the lists the app holds for its unit and a gate's admissions (`_lists.py`), the upload
(`_upload.py`), the SQLite file (`_store.py`).

Over 400 lines because the `Terminal` is the terminal SDK's one object: each concern's logic lives in its module above,
and what stays here is the thin, documented method by which a terminal program reaches it.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from yima_sdk._stops import Tap, valid_stop
from yima_sdk.codes import VerifiedCode, Verifier
from yima_sdk.documents import TerminalDocument, documents_etag, in_force
from yima_sdk.fares import FareSchedule
from yima_sdk.lists import ListChanges
from yima_sdk.terminal._clock import verify_server_time
from yima_sdk.terminal._decisions import Group, ScanDecision, ScanMemory
from yima_sdk.terminal._documents import HeldDocuments, encode_documents, offline_fare
from yima_sdk.terminal._lists import Admission, HeldEntry, HeldLists
from yima_sdk.terminal._store import ScanStore
from yima_sdk.terminal._transport import REVOCATION_KINDS_QUERY, HttpTransport, Transport, TransportError
from yima_sdk.terminal._upload import upload_records
from yima_sdk.terminal._wire import ClockSource
from yima_sdk.trust import (
    KNOWN_REVOCATION_KINDS,
    RevocationError,
    RevocationSet,
    TrustList,
    decode_revocation_delta,
)

__all__ = ["PendingScans", "ScanDecision", "Terminal", "TerminalError"]

_TRUST_LIST_KEY: Final = "trust_list"
_CLOCK_OFFSET_KEY: Final = "clock_offset_ms"
_DOCUMENTS_KEY: Final = "documents"
_REVOCATION_KINDS_KEY: Final = "revocation_kinds"
"""The `kinds` the held revocation lists were fetched with (`REVOCATION_KINDS_QUERY`)."""

log = logging.getLogger("yima_sdk.terminal")


class TerminalError(Exception):
    """The terminal cannot decide: `terminal.no_trust_list` (never refreshed and nothing stored);
    `terminal.bad_lists`: the server's list answer is malformed (nothing of it was kept)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


class PendingScans:
    """The decisions of a `Terminal.submit_many` group, handed out only once their records are durable."""

    __slots__ = ("_group", "_terminal")

    def __init__(self, terminal: Terminal, group: Group) -> None:
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
        pass_issuer: int | None = None,
    ) -> None:
        """`pass_issuer`: the issuer whose platform issues the passes this terminal admits (see `Verifier`; None:
        the one issuer with pass keys on the trust list)."""
        self._roots = dict(root_public_keys)
        self._pass_issuer = pass_issuer
        self._app_id = app_id
        self._clock = clock
        self._clock_source: ClockSource = clock_source
        self._transport = transport
        self._skew = clock_skew_s
        self._ride_window = ride_window_s
        self._upload_batch_size = upload_batch_size
        self._store = ScanStore(db_path)
        self._lists = HeldLists(db_path)
        self._revocations: RevocationSet = self._store.load_revocations()
        # Ride codes are remembered for as long as their timestamp could still pass the stale check,
        # so a ride code shown twice is refused as a repeat, not re-charged.
        ride_memory = ride_window_s + 2 * clock_skew_s + replay_window_s
        self._memory = ScanMemory(self._store.offline_spent(), replay_window_s, ride_memory)
        self._trust_list: TrustList | None = None
        self._verifier: Verifier | None = None
        self._inflight: Group | None = None  # the submit_many group whose commit may still be running
        self._committer: ThreadPoolExecutor | None = None
        stored = self._store.get_state(_TRUST_LIST_KEY)
        if stored is not None:
            self._install(TrustList.verify(stored, self._roots))
        offset = self._store.get_state(_CLOCK_OFFSET_KEY)
        self._clock_offset_s = int(offset) / 1000 if offset is not None else 0.0
        self._held = HeldDocuments(self._roots, app_id, self._store.get_state(_DOCUMENTS_KEY))
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
        self._verifier = Verifier(
            trust_list,
            clock_skew_s=self._skew,
            ride_window_s=self._ride_window,
            pass_issuer=self._pass_issuer,
        )

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
        return self._held.versions(name)

    def document(self, name: str, at: float | None = None) -> TerminalDocument | None:
        """The version of `name` in force at `at` (Unix seconds; default: the terminal's corrected time now)."""
        return in_force(self.documents(name), self.now() if at is None else at)

    def load_documents(self, body: bytes) -> int:
        """Verify and keep a `GET /v1/terminal/documents` answer: each version signed by a pinned root key,
        published by this terminal's app (`app_id`), and no held version replaced by other content; a `fares`
        version must be a fare table the engine prices with. All or nothing: one bad document keeps what was
        held. Returns how many versions are held. Raises DocumentError (FareError for a fare table)."""
        merged, fares = self._held.merged(body)  # raises before anything is kept
        self._settle()
        self._store.set_state(_DOCUMENTS_KEY, encode_documents(merged))
        self._held.keep(merged, fares)
        return len(merged)

    def sync_documents(self) -> int:
        """Fetch this terminal's app's documents (by ETag) and keep them (`load_documents`); `refresh` calls it.
        Returns how many versions are held. Raises TransportError, DocumentError, FareError."""
        transport = self._require_transport()
        body = transport.fetch_documents(self._held.etag)
        if body is not None:
            self.load_documents(body)
            self._held.etag = documents_etag(body)
        return len(self._held.by_version)

    @property
    def fares(self) -> FareSchedule | None:
        """The fare tables this terminal prices offline rides with (its app's `fares` documents), None before
        any."""
        return self._held.fares

    def fare(self, line: str, board: str | None = None, alight: str | None = None) -> int:
        """The fare in fen of a boarding of `line` now, as the fare engine prices it offline: the table in force
        at the terminal's time, without the rider's concessions, transfers or caps (settlement applies those).
        Raises TerminalError `terminal.no_fares` before its app published a fare table (and the terminal synced
        it), FareError for an unknown line or stop, or before the first version is in force."""
        fares = self._held.fares
        if fares is None:
            raise TerminalError("terminal.no_fares")
        at = dt.datetime.fromtimestamp(self._clock() + self._clock_offset_s, dt.UTC)
        return offline_fare(fares, at, line, board, alight)

    # -- lists its scene's app holds for its staff unit (yima_sdk.lists: a spot's tickets) --------------

    def load_lists(self, body: bytes) -> int:
        """Keep one `GET /v1/terminal/lists` answer (all or nothing); returns how many entries are held. Raises
        TerminalError `terminal.bad_lists` for a malformed answer. An answer for another app or unit than those
        held (the terminal's scene was bound to another app, or it moved) forgets what is held; fetch again from
        `after=0` then (`sync_lists` does)."""
        self._load_lists(body)
        return self._lists.count()

    def _load_lists(self, body: bytes) -> ListChanges:
        try:
            return self._lists.load(body, self.now())
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise TerminalError("terminal.bad_lists", str(exc)) from None

    def sync_lists(self) -> int:
        """Fetch the changes of its unit's lists since the last sync (page by page) and keep them; `refresh`
        calls it. Returns how many entries are held. Raises TransportError, TerminalError."""
        transport = self._require_transport()
        while self._load_lists(transport.fetch_lists(self._lists.cursor)).more:
            pass
        return self._lists.count()

    def held(self, code: VerifiedCode, list_name: str | None = None) -> list[HeldEntry]:
        """The held entries in force now that a verified code finds: those bound to its holder (an Ankang code,
        by holder tag), or to its pass (a pass of the terminal's app, by number); of `list_name` only if given."""
        return self._lists.find(code, self.now(), list_name)

    def admit(self, payload: str, list_name: str) -> Admission:
        """A gate's scan: decided and recorded as `scan` does, then admitted only by an entry of `list_name` that
        the code finds, once (again only where the entry's value says `"reentry": true`; a first entry only until
        its `enter_until`), for the entry's `people` (default 1). The use is kept in the terminal's file before
        this returns. The gate's verdict is kept with the scan's record: its upload carries it
        (`terminal_admitted`, `terminal_reason`), so the app settles the scan as the gate decided it."""
        admission = self._lists.admit(self.scan(payload), self.now(), list_name)
        if not admission.decision.repeated:  # a repeat has no record of its own
            self._store.set_gate_verdict(admission.decision.record_id, admission.admit, admission.reason)
        return admission

    def apply_revocations(self, body: bytes, issuer: int) -> None:
        """Apply and store one `GET /v1/revocations` body that answered a request for `issuer`. Entries of kinds
        this SDK does not know (a newer server's) are kept aside and stored, and logged by kind and count: the
        known entries still count (docs/scan.md, Revocation)."""
        delta, added = decode_revocation_delta(body)
        if delta.issuer != issuer:
            raise RevocationError("revocation.malformed", "delta for another issuer")
        self._settle()
        self._revocations.apply_delta(issuer, delta.since, delta.version, added)
        self._store.save_revocations(issuer, delta.since == 0, delta.version, added)
        unknown = Counter(kind for kind, _ in added if kind not in KNOWN_REVOCATION_KINDS)
        if unknown:
            # kind names and counts only: a reference may stand for a resident
            log.warning(
                "revocation entries of kinds this SDK does not know were kept aside: %s (issuer %d, version %d);"
                " a newer SDK applies them",
                ", ".join(f"{kind} x{count}" for kind, count in sorted(unknown.items())),
                issuer,
                delta.version,
            )

    def refresh(self) -> None:
        """Learn the server's time (`sync_clock`), fetch the trust list (by ETag), every issuer's revocation
        delta, with an `app_id` its app's documents (`sync_documents`), and its unit's lists (`sync_lists`).
        Raises `TransportError`."""
        transport = self._require_transport()
        self.sync_clock()
        envelope = transport.fetch_trust_list(self._trust_list.etag if self._trust_list else None)
        if envelope is not None:
            self.load_trust_list(envelope)
        if self._trust_list is None:
            raise TerminalError("terminal.no_trust_list")
        # Lists held from requests that named other kinds (an older SDK's, or none) lack the entries of the kinds
        # this SDK knows and they left out, though their version moved past them: fetch every list whole again.
        whole = self._store.get_state(_REVOCATION_KINDS_KEY) != REVOCATION_KINDS_QUERY.encode()
        for issuer in sorted({e.issuer for e in self._trust_list.entries}):
            body = transport.fetch_revocations(issuer, 0 if whole else self._revocations.version(issuer))
            self.apply_revocations(body, issuer)
        if whole:
            self._store.set_state(_REVOCATION_KINDS_KEY, REVOCATION_KINDS_QUERY.encode())
        if self._app_id is not None:
            self.sync_documents()
        self.sync_lists()

    def _require_transport(self) -> Transport:
        if self._transport is None:
            raise TransportError("no transport configured")
        return self._transport

    # -- scanning -----------------------------------------------------------------------------------

    def scan(
        self, payload: str, amount_fen: int = 0, *, stop: str | None = None, tap: Tap = "on"
    ) -> ScanDecision:
        """Decide one scan offline; returns after its record is durable. `stop`: where the terminal is (an ASCII
        id as the fare table names stops), kept with the record; `tap="off"`: a rider tapping off (下车刷卡),
        charged nothing (`amount_fen` must be 0), a code shown at boarding may be shown again to tap off."""
        return self.scan_many([(payload, amount_fen)], stop=stop, tap=tap)[0]

    def scan_many(
        self, scans: Iterable[tuple[str, int]], *, stop: str | None = None, tap: Tap = "on"
    ) -> list[ScanDecision]:
        """Decide several scans (payload, amount in fen) with one durable commit for all their records; `stop`
        and `tap` (as `scan`) are every scan's of the group."""
        group = self._decide(scans, stop, tap)
        self._settle()
        self._store.add_records(group.rows, int(group.now * 1000), self._clock_source, group.spent)
        self._publish(group)
        return group.decisions

    def submit_many(
        self, scans: Iterable[tuple[str, int]], *, stop: str | None = None, tap: Tap = "on"
    ) -> PendingScans:
        """Pipelined `scan_many`: decide this group while the previous group's commit is on disk.

        Verifies the scans (the previous group's fsync runs meanwhile on the commit thread), waits
        for that commit, writes this group's records and starts their commit on the commit thread.
        `PendingScans.result()` gives the decisions once their records are durable, never earlier.
        A reader loop submits the group that queued up, answers the previous group, and so on.
        """
        group = self._decide(scans, stop, tap)
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

    def _publish(self, group: Group) -> None:
        self._memory.publish(group)

    def _decide(self, scans: Iterable[tuple[str, int]], stop: str | None, tap: Tap) -> Group:
        """Decide a group of scans and build their records; nothing is written or published yet."""
        if stop is not None and not valid_stop(stop):
            raise ValueError(
                f"stop {stop!r} is not an ASCII id of 1-64 letters, digits, '_', '.', ':' or '-'"
            )
        if tap not in ("on", "off"):
            raise ValueError(f"tap must be 'on' or 'off', not {tap!r}")
        scans = list(scans)
        if tap == "off" and any(amount for _, amount in scans):
            raise ValueError("a tap-off charges nothing: its amount_fen must be 0")
        verifier = self._verifier
        if verifier is None:
            raise TerminalError("terminal.no_trust_list")
        now = self._clock() + self._clock_offset_s
        return self._memory.decide(verifier, self._revocations, now, scans, self._inflight, stop, tap)

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
        return upload_records(self._store, transport, self._upload_batch_size)

    def close(self) -> None:
        try:
            self._settle()
        finally:
            if self._committer is not None:
                self._committer.shutdown()
            self._store.close()
            self._lists.close()
