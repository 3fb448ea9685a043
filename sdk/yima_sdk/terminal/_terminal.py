"""`Terminal`: offline-first scanning for bus, clinic, pharmacy, scenic-gate and counter devices.

A scan is decided locally (trust list + revocations + `Verifier`), written to SQLite, and only then
answered. `scan_many` is group commit: several scans (several readers, or a queue that built up while
the previous commit was on disk) share one fsync, and none of them is answered before that fsync.
Uploads run whenever the terminal is online and resume after a cut connection, because a record is
marked uploaded only when the server's answer names it.
"""

from __future__ import annotations

import os
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Final, Literal

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from yima_sdk.codes import CredentialError, VerifiedCode, Verifier
from yima_sdk.terminal._store import RecordRow, ScanStore
from yima_sdk.terminal._transport import Transport, TransportError
from yima_sdk.terminal._wire import ClockSource, ScanBatch, ScanBatchResult, ScanRecord
from yima_sdk.trust import RevocationError, RevocationSet, TrustList, decode_revocation_delta

__all__ = ["ScanDecision", "Terminal", "TerminalError"]

_TRUST_LIST_KEY: Final = "trust_list"
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
    ) -> None:
        self._roots = dict(root_public_keys)
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
        self._recent_order: deque[tuple[float, bytes]] = deque()
        # Record ids: a random per-run prefix plus a counter, UUID-shaped (version 4 and variant bits
        # set). Unique without a random draw per scan, which would cost more than the rest of the record.
        prefix = uuid.UUID(bytes=os.urandom(16), version=4).hex
        self._id_prefix = f"{prefix[:8]}-{prefix[8:12]}-{prefix[12:16]}-{prefix[16:20]}-"
        self._id_counter = 0
        self._trust_list: TrustList | None = None
        self._verifier: Verifier | None = None
        stored = self._store.get_state(_TRUST_LIST_KEY)
        if stored is not None:
            self._install(TrustList.verify(stored, self._roots))

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
        if self._trust_list is None or trust_list.document != self._trust_list.document:
            self._store.set_state(_TRUST_LIST_KEY, envelope)
            self._install(trust_list)
        return trust_list

    def apply_revocations(self, body: bytes, issuer: int) -> None:
        """Apply and store one `GET /v1/revocations` body that answered a request for `issuer`."""
        delta, added = decode_revocation_delta(body)
        if delta.issuer != issuer:
            raise RevocationError("revocation.malformed", "delta for another issuer")
        self._revocations.apply_delta(issuer, delta.since, delta.version, added)
        self._store.save_revocations(issuer, delta.since == 0, delta.version, added)

    def refresh(self) -> None:
        """Fetch the trust list (by ETag) and every issuer's revocation delta. Raises `TransportError`."""
        transport = self._require_transport()
        envelope = transport.fetch_trust_list(self._trust_list.etag if self._trust_list else None)
        if envelope is not None:
            self.load_trust_list(envelope)
        if self._trust_list is None:
            raise TerminalError("terminal.no_trust_list")
        for issuer in sorted({e.issuer for e in self._trust_list.entries}):
            body = transport.fetch_revocations(issuer, self._revocations.version(issuer))
            self.apply_revocations(body, issuer)

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
        verifier = self._verifier
        if verifier is None:
            raise TerminalError("terminal.no_trust_list")
        now = self._clock()
        self._forget_before(now)
        revocations = self._revocations
        recent = self._recent
        spent = self._spent
        batch_spent: dict[bytes, int] = {}
        batch_recent: dict[bytes, ScanDecision] = {}
        decisions: list[ScanDecision] = []
        rows: list[RecordRow] = []
        scanned_at = int(now * 1000)
        source = self._clock_source
        for payload, amount_fen in scans:
            serial: bytes | None = None
            code: VerifiedCode | None = None
            try:
                verified = verifier.verify(payload, now, revocations=revocations)
            except CredentialError as exc:
                result: Literal["accept", "reject"] = "reject"
                reason: str | None = exc.code
            else:
                code = verified
                key = verified.replay_key
                earlier = batch_recent.get(key)
                if earlier is None:
                    seen = recent.get(key)
                    earlier = seen[1] if seen is not None and now - seen[0] <= self._replay_window else None
                if earlier is not None:
                    decisions.append(msgspec.structs.replace(earlier, repeated=True))
                    continue
                result, reason = "accept", None
                if verified.kind == "ride_code":
                    serial = verified.certificate_serial
                    assert serial is not None and verified.max_offline_amount_fen is not None
                    total = spent.get(serial, 0) + batch_spent.get(serial, 0) + amount_fen
                    seen = recent.get(key)
                    if seen is not None and seen[1].result == "accept":
                        result, reason = "reject", "credential.replayed"
                    elif total > verified.max_offline_amount_fen:
                        result, reason = "reject", "credential.offline_limit_exceeded"
                    else:
                        batch_spent[serial] = batch_spent.get(serial, 0) + amount_fen
            self._id_counter += 1
            record_id = f"{self._id_prefix}{self._id_counter:012x}"
            decision = ScanDecision(record_id=record_id, result=result, reason=reason, code=code)
            if code is not None and reason != "credential.replayed":
                batch_recent[code.replay_key] = decision
            decisions.append(decision)
            rows.append((record_id, payload, scanned_at, source, amount_fen, result, reason, serial))
        # Durable first; only then does anything this batch decided become visible or get answered.
        self._store.add_records(rows)
        for key, decision in batch_recent.items():
            recent[key] = (now, decision)
            self._recent_order.append((now, key))
        for serial, amount in batch_spent.items():
            spent[serial] = spent.get(serial, 0) + amount
        return decisions

    def _forget_before(self, now: float) -> None:
        order, recent = self._recent_order, self._recent
        horizon = now - max(self._ride_memory, self._replay_window)
        while order and order[0][0] < horizon:
            at, key = order.popleft()
            seen = recent.get(key)
            if seen is not None and seen[0] == at:
                del recent[key]

    # -- upload -------------------------------------------------------------------------------------

    def pending_count(self) -> int:
        return self._store.pending_count()

    def server_verdict(self, record_id: str) -> tuple[str | None, str | None] | None:
        """(server status, reason) once uploaded, (None, None) while pending, None if unknown."""
        return self._store.server_verdict(record_id)

    def upload_pending(self) -> int:
        """Upload pending records in batches until none is left; returns how many the server acknowledged.

        A cut connection raises `TransportError` after marking what was acknowledged so far; the
        unacknowledged records stay pending and go again next time (the server deduplicates by record id).
        """
        transport = self._require_transport()
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
            seq_of = {r[1]: r[0] for r in rows}
            done = [
                (seq_of[r.record_id], r.status, r.reason) for r in result.results if r.record_id in seq_of
            ]
            self._store.mark_uploaded(done)
            acknowledged += len(done)
            if not done:
                # The server acknowledged nothing: stop rather than spin; the records stay pending.
                raise TransportError("server acknowledged no record of the batch")

    def close(self) -> None:
        self._store.close()
