"""The simulated `terminals` capability: documents an app publishes to its scenes' terminals (the fare table),
signed by the simulator's root as production signs them, and the settlement that re-prices offline rides by them."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from yima_sdk import contract as c
from yima_sdk.errors import QuotaExceeded, VersionConflict
from yima_sdk.fares import FareError, FareSchedule, FareTable, settlement_fare

if TYPE_CHECKING:
    from yima_sdk.simulator._platform import SimulatedPlatform

__all__ = ["SimulatedTerminals"]


class SimulatedTerminals:
    """`terminals.*` operations of one simulated app (its documents are `platform.documents`)."""

    def __init__(self, platform: SimulatedPlatform) -> None:
        self.platform = platform

    def publish(self, op: c.TerminalsPublish) -> c.DocumentVersion:
        content = c.check_document(op)
        reply = c.DocumentVersion(name=op.name, version=op.version, effective_from=op.effective_from)
        held = self.platform.documents.get((op.name, op.version))
        if held is not None:
            if held[:2] != (op.effective_from, content):
                raise VersionConflict(f"{op.name} version {op.version} is published with other content")
            return reply
        published = sum(1 for name, _ in self.platform.documents if name == op.name)
        if published >= self.platform.documents_quota:
            raise QuotaExceeded(
                f"at most {self.platform.documents_quota} versions of {op.name} may be published"
            )
        c.check_effective_from(op, self.platform.clock(), first=published == 0)
        envelope = self.platform.credentials.sign_document(op.name, op.version, op.effective_from, content)
        self.platform.documents[(op.name, op.version)] = (op.effective_from, content, envelope)
        return reply

    def published(self, name: str) -> list[c.DocumentVersion]:
        found = [
            c.DocumentVersion(name=n, version=v, effective_from=held[0])
            for (n, v), held in self.platform.documents.items()
            if n == name
        ]
        return sorted(found, key=lambda d: (d.effective_from, d.version))

    def settle_ride(self, unit: str | None, at: dt.datetime, amount_fen: int) -> int | None:
        """What production's settlement charges for an offline ride code the terminal priced at `amount_fen`:
        re-priced by the published `fares` version in force at `at` for the line of a `line:<id>` unit, else
        the terminal's amount (no fares published, a terminal without a line); None (nothing charged) when the
        published tables cannot price it."""
        tables = [
            FareTable.from_json(held[1])
            for (n, _), held in self.platform.documents.items()
            if n == c.FARES_DOCUMENT
        ]
        if not tables or unit is None or not unit.startswith("line:"):
            return amount_fen
        try:
            return settlement_fare(FareSchedule(tables), unit.removeprefix("line:"), at)
        except FareError:
            return None  # production refuses to charge a ride its tables cannot price

    def terminal_documents(self) -> bytes:
        """What `GET /v1/terminal/documents` answers a terminal of this app's scenes: every published version,
        signed by the simulator's root (`credentials.root_public_keys`), for `Terminal.load_documents`."""
        return b'{"documents":[' + b",".join(held[2] for held in self.platform.documents.values()) + b"]}"
