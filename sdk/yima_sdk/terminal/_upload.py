"""Uploading a terminal's durable scan records: in batches of `ScanBatch`, each record marked uploaded only when
the server's answer names it, so a cut connection loses nothing and a retried batch is deduplicated by record id.
"""

from __future__ import annotations

import uuid

import msgspec

from yima_sdk.terminal._store import ScanStore
from yima_sdk.terminal._transport import Transport, TransportError
from yima_sdk.terminal._wire import ScanBatch, ScanBatchResult, ScanRecord

__all__ = ["upload_records"]

_batch_encoder = msgspec.json.Encoder()
_batch_result_decoder = msgspec.json.Decoder(ScanBatchResult)


def upload_records(store: ScanStore, transport: Transport, batch_size: int) -> int:
    """Upload `store`'s pending records in batches until none is left; how many the server acknowledged.
    Raises `TransportError` after marking what was acknowledged so far."""
    acknowledged = 0
    while True:
        rows = store.pending(batch_size)
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
                    stop=r[8],
                    tap=r[9],  # type: ignore[arg-type]
                    terminal_admitted=r[10],
                    terminal_reason=r[11],
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
        store.mark_uploaded(done)
        acknowledged += len(done)
        if not done:
            # The server acknowledged nothing: stop rather than spin; the records stay pending.
            raise TransportError("server acknowledged no record of the batch")
