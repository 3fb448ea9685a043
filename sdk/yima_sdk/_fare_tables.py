"""The fare table format: what an operator writes and staff send, checked as it is decoded.

`yima_sdk.fares` (the pricing engine) re-exports every public name here; its docstring describes what each
field does to a fare. A table that does not hold together is `FareError` naming what is wrong.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from yima_sdk.errors import InvalidArgument

__all__ = [
    "AgeBand",
    "Eligibility",
    "FareError",
    "FareTable",
    "Line",
    "PeakRule",
    "Stage",
    "TransferRule",
    "clock_minutes",
]

Fen = Annotated[int, msgspec.Meta(ge=0, le=100_000_00)]
Percent = Annotated[int, msgspec.Meta(ge=0, le=100)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
ClockTime = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")]


class FareError(InvalidArgument):
    """A fare table that does not hold together, or a ride it cannot price (unknown line or stop, no table yet)."""


class _Spec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Fare table parts: frozen (a table is a value), keyword-only, and unknown fields refused, so a staff
    member's typo is an error rather than a silently ignored rule."""


class Stage(_Spec, frozen=True):
    """Up to `up_to_stops` stops travelled cost `fare_fen`."""

    up_to_stops: Annotated[int, msgspec.Meta(ge=1, le=1000)]
    fare_fen: Fen


class Line(_Spec, frozen=True):
    """A bus line: its stops in order, and a flat fare or stages (exactly one of them)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    stops: list[Name] = []
    flat_fen: Fen | None = None
    stages: list[Stage] = []


class AgeBand(_Spec, frozen=True):
    """Riders aged `min_age` to `max_age` (inclusive; None: no upper bound) belong to `category`."""

    category: Name
    min_age: Annotated[int, msgspec.Meta(ge=0, le=150)]
    max_age: Annotated[int, msgspec.Meta(ge=0, le=150)] | None = None


class PeakRule(_Spec, frozen=True):
    """From `start` to `end` (county time, end excluded) on `weekdays` (1 = Monday ... 7 = Sunday): add
    `surcharge_fen`, and the concessions named in `suspends` do not apply."""

    start: ClockTime
    end: ClockTime
    weekdays: list[Annotated[int, msgspec.Meta(ge=1, le=7)]] = msgspec.field(
        default_factory=lambda: [1, 2, 3, 4, 5]
    )
    surcharge_fen: Fen = 0
    suspends: list[Name] = []


class TransferRule(_Spec, frozen=True):
    """A boarding on another line within `window_min` minutes of the previous boarding takes `off_fen` off."""

    window_min: Annotated[int, msgspec.Meta(ge=1, le=24 * 60)] = 60
    off_fen: Fen = 0


class FareTable(_Spec, frozen=True):
    """One version of the operator's fares, in force from `effective_from` until the next version."""

    version: Annotated[int, msgspec.Meta(ge=1)]
    effective_from: dt.datetime
    lines: dict[Name, Line]
    concessions: dict[Name, Percent] = {}
    """Category -> percent of the fare it pays (50: half; 0: free)."""
    age_bands: list[AgeBand] = []
    peak: list[PeakRule] = []
    transfer: TransferRule | None = None
    daily_cap_fen: Fen | None = None
    monthly_cap_fen: Fen | None = None

    @classmethod
    def from_json(cls, body: bytes | str) -> FareTable:
        """Decode and check a table (as staff send it); `FareError` names what is wrong."""
        try:
            table = msgspec.json.decode(body, type=cls)
        except msgspec.ValidationError as exc:
            raise FareError(f"fare table: {exc}") from None
        except msgspec.DecodeError as exc:  # not JSON at all
            raise FareError(f"fare table: not JSON: {exc}") from None
        table.check()
        return table

    def check(self) -> None:
        """Refuse a table the engine could not price with; the decoder has checked each field already."""
        if self.effective_from.tzinfo is None:
            raise FareError("fare table: effective_from needs a time zone")
        for line_id, line in self.lines.items():
            if (line.flat_fen is None) == (not line.stages):
                raise FareError(f"fare table: line {line_id} needs flat_fen or stages, not both")
            if len(set(line.stops)) != len(line.stops):
                raise FareError(f"fare table: line {line_id} names a stop twice")
            ups = [s.up_to_stops for s in line.stages]
            if ups != sorted(set(ups)):
                raise FareError(f"fare table: line {line_id} stages must grow in up_to_stops")
        for band in self.age_bands:
            if band.category not in self.concessions:
                raise FareError(f"fare table: age band category {band.category} has no concession")
            if band.max_age is not None and band.max_age < band.min_age:
                raise FareError(f"fare table: age band {band.category} ends before it starts")
        for rule in self.peak:
            if clock_minutes(rule.end) <= clock_minutes(rule.start):
                raise FareError(f"fare table: peak {rule.start}-{rule.end} ends before it starts")


class Eligibility(_Spec, frozen=True):
    """A concession category granted to a rider by staff (student, disability, veteran), valid until `expires_at`."""

    category: Name
    expires_at: dt.datetime


def clock_minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)
