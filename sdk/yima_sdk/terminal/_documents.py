"""The documents a terminal holds from its scene's app (the fare table): each version verified against the pinned
root keys and published by the terminal's app, none replaced by other content once held; and the offline fare
their `fares` versions give. Persisting them, after the scan group in flight is durable, is `Terminal`'s part.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Final

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from yima_sdk.contract import FARES_DOCUMENT
from yima_sdk.documents import DocumentError, TerminalDocument
from yima_sdk.fares import FareSchedule, FareState, FareTable, Ride, Rider, settlement_fare

__all__ = ["HeldDocuments", "encode_documents", "offline_fare"]

Held = dict[tuple[str, int], TerminalDocument]
"""Held documents by (name, version)."""

_documents_codec = msgspec.msgpack.Decoder(list[bytes])
_documents_list = msgspec.json.Decoder(dict[str, list[msgspec.Raw]])
_ANYONE: Final = Rider()
"""Offline, the terminal knows nothing of the rider: no concession, no earlier rides (settlement re-prices)."""
_NO_RIDES: Final = FareState()


class HeldDocuments:
    """The verified documents of one terminal's app, the fare schedule they make, and the ETag they came with."""

    def __init__(
        self, roots: Mapping[str, Ed25519PublicKey | bytes], app_id: str | None, stored: bytes | None
    ) -> None:
        self._roots = roots
        self._app_id = app_id
        self.etag: str | None = None
        self.by_version: Held = {}
        self.fares: FareSchedule | None = None
        if stored is not None:
            documents = [
                TerminalDocument.verify(envelope, roots) for envelope in _documents_codec.decode(stored)
            ]
            self.keep(*_with_fares({(d.name, d.version): d for d in documents if d.app_id == app_id}))

    def versions(self, name: str) -> list[TerminalDocument]:
        """Every held version of document `name`, oldest effective first."""
        found = [d for (n, _), d in self.by_version.items() if n == name]
        return sorted(found, key=lambda d: (d.effective_from, d.version))

    def merged(self, body: bytes) -> tuple[Held, FareSchedule | None]:
        """What is held with a `GET /v1/terminal/documents` answer added, and its fare schedule; nothing is kept.
        Raises DocumentError (FareError for a `fares` version that is no fare table)."""
        try:
            envelopes = [bytes(raw) for raw in _documents_list.decode(body).get("documents", [])]
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise DocumentError(f"terminal documents: malformed: {exc}") from None
        merged = dict(self.by_version)
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
        return _with_fares(merged)

    def keep(self, documents: Held, fares: FareSchedule | None) -> None:
        self.by_version, self.fares = documents, fares


def encode_documents(documents: Held) -> bytes:
    """Held documents as the terminal stores them (their signed envelopes)."""
    return msgspec.msgpack.encode([d.envelope for d in documents.values()])


def offline_fare(
    fares: FareSchedule, at: dt.datetime, line: str, board: str | None, alight: str | None
) -> int:
    """A boarding's fare in fen as a terminal prices it offline: without the rider's concessions, transfers or
    caps; without stops, the boarding fare exactly as settlement re-prices it."""
    if board is None and alight is None:
        return settlement_fare(fares, line, at)
    ride = Ride(ride_id="", at=at, line=line, board=board, alight=alight)
    return fares.price(ride, _ANYONE, _NO_RIDES)[0].fare_fen


def _with_fares(documents: Held) -> tuple[Held, FareSchedule | None]:
    """`documents` and the fare schedule of their `fares` versions (None without any); FareError for a version
    that is no fare table."""
    return documents, _schedule(documents.values())


def _schedule(documents: Iterable[TerminalDocument]) -> FareSchedule | None:
    tables = [FareTable.from_json(d.content) for d in documents if d.name == FARES_DOCUMENT]
    return FareSchedule(tables) if tables else None
