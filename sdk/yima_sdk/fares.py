"""The bus fare engine: fare tables (lines, stops, flat and staged fares, concessions, peak hours, transfers,
caps) and the one pricing function both the bus app (online scans, settlement of offline rides) and a terminal
(offline ride codes) use, so a ride costs the same whichever path priced it.

    schedule = FareSchedule([FareTable.from_json(body)])
    priced, state = schedule.price(Ride(ride_id="r1", at=t, line="1"), Rider(birth_date=d), FareState())

Pure, deterministic, integer fen (1 yuan = 100 fen); no clock, no I/O. A ride is priced by the table in force
when it happened (the newest `effective_from` at or before `Ride.at`), in county time (UTC+8). The steps, in order:

1. base: the line's flat fare, or its staged fare by stops travelled (|alight - board| along the line's stops;
   without both stops, the top stage: the rider did not say where they got off);
2. peak: a peak rule in force adds its surcharge and may suspend some concessions;
3. concession: the rider's categories (an age band from the birth date on the ride's county date, and
   eligibility records not expired at the ride's time) pay the table's percentage of the fare; the cheapest wins;
4. transfer: a boarding on another line within the window after the previous boarding, itself not a transfer,
   takes `off_fen` off (never below zero);
5. caps: what the rider paid that county day and month never exceeds the daily and monthly caps.

Rounding: a percentage of a fare is rounded down to the fen (`fen * pct // 100`), the rider's favour.

`FareState` carries what steps 4-5 need from earlier rides, so the caller keeps one small record per rider;
`price_rides` prices a rider's rides from scratch in time order (settlement re-prices this way).

Terminals receive the tables as their scene's app published them (`ctx.terminals.publish("fares", ...)`, one
terminal document per version, signed by the platform's trust-list root: `yima_sdk.documents`), so a terminal
prices offline only from tables the root vouched for; settlement re-prices with the same versions.

The table format (`FareTable` and its parts, checked on decode) is `yima_sdk._fare_tables`, re-exported here.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Sequence

import msgspec

from yima_sdk._fare_tables import (
    AgeBand,
    Eligibility,
    FareError,
    FareTable,
    Line,
    PeakRule,
    Stage,
    TransferRule,
    clock_minutes,
)
from yima_sdk.cron import COUNTY_TIME

__all__ = [
    "AgeBand",
    "Eligibility",
    "FareError",
    "FareSchedule",
    "FareState",
    "FareTable",
    "Line",
    "PeakRule",
    "PricedRide",
    "Ride",
    "Rider",
    "Stage",
    "TransferRule",
    "price_rides",
    "settlement_fare",
]


class Rider(msgspec.Struct, frozen=True, kw_only=True):
    """What the fare depends on about a rider: a consented birth date (None: not consented) and eligibilities."""

    birth_date: dt.date | None = None
    eligibilities: tuple[Eligibility, ...] = ()


class Ride(msgspec.Struct, frozen=True, kw_only=True):
    """One boarding: when (aware), which line, and the stops where known."""

    ride_id: str
    at: dt.datetime
    line: str
    board: str | None = None
    alight: str | None = None


class PricedRide(msgspec.Struct, frozen=True, kw_only=True):
    """A ride with its fare and how it was reached: base + peak - concession - transfer - cap = fare."""

    ride_id: str
    at: dt.datetime
    line: str
    table_version: int
    base_fen: int
    peak_fen: int = 0
    concession: str | None = None
    concession_off_fen: int = 0
    transfer: bool = False
    transfer_off_fen: int = 0
    cap_off_fen: int = 0
    fare_fen: int


class FareState(msgspec.Struct, frozen=True, kw_only=True):
    """What pricing the next ride needs from a rider's earlier rides (keep one per rider)."""

    last_at: dt.datetime | None = None
    last_line: str | None = None
    last_was_transfer: bool = False
    day: dt.date | None = None
    """The county date `day_fen` counts (the month of `month_fen` is this date's month)."""
    day_fen: int = 0
    month_fen: int = 0


class _Compiled:
    """A table made fast to price with: stop positions, peak windows in minutes, age bands sorted."""

    __slots__ = ("ages", "peaks", "stops", "table", "top")

    def __init__(self, table: FareTable) -> None:
        self.table = table
        self.stops = {lid: {s: i for i, s in enumerate(line.stops)} for lid, line in table.lines.items()}
        self.top = {
            lid: (line.stages[-1].fare_fen if line.stages else 0) for lid, line in table.lines.items()
        }
        self.peaks = [
            (
                frozenset(r.weekdays),
                clock_minutes(r.start),
                clock_minutes(r.end),
                r.surcharge_fen,
                frozenset(r.suspends),
            )
            for r in table.peak
        ]
        self.ages = [(b.min_age, b.max_age, b.category) for b in table.age_bands]

    def base(self, ride: Ride) -> int:
        line = self.table.lines.get(ride.line)
        if line is None:
            raise FareError(f"unknown line {ride.line!r} in fare table version {self.table.version}")
        if line.flat_fen is not None:
            return line.flat_fen
        stops = self.stops[ride.line]
        if ride.board is None or ride.alight is None:
            return self.top[ride.line]
        try:
            travelled = abs(stops[ride.alight] - stops[ride.board])
        except KeyError as exc:
            raise FareError(f"unknown stop {exc.args[0]!r} on line {ride.line!r}") from None
        for stage in line.stages:
            if travelled <= stage.up_to_stops:
                return stage.fare_fen
        return self.top[ride.line]


class FareSchedule:
    """Every version of a fare table; prices each ride by the version in force when it happened."""

    __slots__ = ("_compiled", "_starts")

    def __init__(self, tables: Iterable[FareTable]) -> None:
        ordered = sorted(tables, key=lambda t: t.effective_from)
        for table in ordered:
            table.check()
        self._starts = [t.effective_from for t in ordered]
        self._compiled = [_Compiled(t) for t in ordered]

    @property
    def tables(self) -> list[FareTable]:
        return [c.table for c in self._compiled]

    def table_at(self, at: dt.datetime) -> FareTable:
        """The version in force at `at` (aware)."""
        return self._at(at).table

    def _at(self, at: dt.datetime) -> _Compiled:
        i = bisect.bisect_right(self._starts, at)
        if i == 0:
            raise FareError(f"no fare table in force at {at.isoformat()}")
        return self._compiled[i - 1]

    def price(self, ride: Ride, rider: Rider, state: FareState) -> tuple[PricedRide, FareState]:
        """Price `ride` after the rides `state` summarises; returns the priced ride and the state after it."""
        compiled = self._at(ride.at)
        table = compiled.table
        local = ride.at.astimezone(COUNTY_TIME)
        fare = base = compiled.base(ride)

        peak_fen = 0
        suspended: frozenset[str] = frozenset()
        if compiled.peaks:
            minute = local.hour * 60 + local.minute
            weekday = local.isoweekday()
            for days, start, end, surcharge, suspends in compiled.peaks:
                if weekday in days and start <= minute < end:
                    peak_fen, suspended = surcharge, suspends
                    break
        fare += peak_fen

        concession, pct = None, 100
        for category in _categories(compiled, rider, ride.at, local.date()):
            if category in suspended:
                continue
            payable = table.concessions.get(category)
            if payable is not None and (
                payable < pct or (payable == pct and concession is not None and category < concession)
            ):
                concession, pct = category, payable
        concession_off = fare - fare * pct // 100 if concession is not None else 0
        fare -= concession_off

        transfer, transfer_off = False, 0
        rule = table.transfer
        if (
            rule is not None
            and state.last_at is not None
            and not state.last_was_transfer
            and state.last_line != ride.line
            and dt.timedelta(0) <= ride.at - state.last_at <= dt.timedelta(minutes=rule.window_min)
        ):
            transfer = True
            transfer_off = min(rule.off_fen, fare)
            fare -= transfer_off

        today = local.date()
        day_fen = state.day_fen if state.day == today else 0
        same_month = state.day is not None and (state.day.year, state.day.month) == (today.year, today.month)
        month_fen = state.month_fen if same_month else 0
        capped = fare
        if table.daily_cap_fen is not None:
            capped = min(capped, max(0, table.daily_cap_fen - day_fen))
        if table.monthly_cap_fen is not None:
            capped = min(capped, max(0, table.monthly_cap_fen - month_fen))
        cap_off = fare - capped
        fare = capped

        priced = PricedRide(
            ride_id=ride.ride_id,
            at=ride.at,
            line=ride.line,
            table_version=table.version,
            base_fen=base,
            peak_fen=peak_fen,
            concession=concession,
            concession_off_fen=concession_off,
            transfer=transfer,
            transfer_off_fen=transfer_off,
            cap_off_fen=cap_off,
            fare_fen=fare,
        )
        after = FareState(
            last_at=ride.at,
            last_line=ride.line,
            last_was_transfer=transfer,
            day=today,
            day_fen=day_fen + fare,
            month_fen=month_fen + fare,
        )
        return priced, after


def price_rides(schedule: FareSchedule, rider: Rider, rides: Sequence[Ride]) -> list[PricedRide]:
    """Price a rider's rides from scratch, in time order (ties by ride id), whatever order they arrived in."""
    state = FareState()
    out: list[PricedRide] = []
    for ride in sorted(rides, key=lambda r: (r.at, r.ride_id)):
        priced, state = schedule.price(ride, rider, state)
        out.append(priced)
    return out


_ANYONE = Rider()
_NO_RIDES = FareState()


def settlement_fare(schedule: FareSchedule, line: str, at: dt.datetime) -> int:
    """An offline boarding of `line` at `at` as a terminal prices it and settlement re-prices it: the table in force
    at `at`, the rider unknown (no concession, transfer or cap), a staged line's top stage. FareError when no
    table is in force or the line is unknown."""
    return schedule.price(Ride(ride_id="", at=at, line=line), _ANYONE, _NO_RIDES)[0].fare_fen


def _categories(compiled: _Compiled, rider: Rider, at: dt.datetime, on: dt.date) -> Iterable[str]:
    if rider.birth_date is not None and compiled.ages:
        born = rider.birth_date
        age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
        for low, high, category in compiled.ages:
            if age >= low and (high is None or age <= high):
                yield category
    for grant in rider.eligibilities:
        if at < grant.expires_at:
            yield grant.category
