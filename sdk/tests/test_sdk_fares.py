"""yima_sdk.fares: the bus fare engine's rules, its versions, its refusals, and one property: a journey priced
online, ride by ride as the scans come, costs what settlement charges when the same rides arrive offline (the
table as a terminal receives it, the rides uploaded late, in any order and any batches)."""

from __future__ import annotations

import base64
import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from sdk_world import NOW, World
from yima_sdk.documents import DocumentError, sign_document
from yima_sdk.fares import (
    Eligibility,
    FareError,
    FareSchedule,
    FareState,
    FareTable,
    PricedRide,
    Ride,
    Rider,
    price_rides,
)
from yima_sdk.terminal import Terminal, TerminalError

CST = dt.timezone(dt.timedelta(hours=8))

TABLE_V1 = {
    "version": 1,
    "effective_from": "2026-01-01T00:00:00+08:00",
    "lines": {
        "1": {"name": "1路", "stops": ["s1", "s2", "s3"], "flat_fen": 200},
        "k2": {
            "name": "K2路",
            "stops": [f"k{i}" for i in range(12)],
            "stages": [
                {"up_to_stops": 4, "fare_fen": 100},
                {"up_to_stops": 8, "fare_fen": 200},
                {"up_to_stops": 11, "fare_fen": 300},
            ],
        },
        "3": {"name": "3路", "flat_fen": 150},
    },
    "concessions": {"senior_60": 50, "senior_70": 0, "student": 50, "disability": 0, "veteran": 0},
    "age_bands": [
        {"category": "senior_60", "min_age": 60, "max_age": 69},
        {"category": "senior_70", "min_age": 70},
    ],
    "peak": [{"start": "07:00", "end": "09:00", "surcharge_fen": 0, "suspends": ["senior_60"]}],
    "transfer": {"window_min": 60, "off_fen": 100},
    "daily_cap_fen": 600,
    "monthly_cap_fen": 12000,
}
TABLE_V2 = {**TABLE_V1, "version": 2, "effective_from": "2026-03-01T00:00:00+08:00"}
TABLE_V2["lines"] = {**TABLE_V1["lines"], "1": {"name": "1路", "stops": ["s1", "s2", "s3"], "flat_fen": 250}}

SCHEDULE = FareSchedule([FareTable.from_json(msgspec.json.encode(t)) for t in (TABLE_V2, TABLE_V1)])


def at(day: int, hour: int, minute: int = 0, month: int = 2) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=CST)  # 2026-02-02 is a Monday


def one(ride: Ride, rider: Rider = Rider(), state: FareState = FareState()) -> PricedRide:
    return SCHEDULE.price(ride, rider, state)[0]


def test_flat_and_staged_fares_by_stops_travelled() -> None:
    assert one(Ride(ride_id="a", at=at(7, 12), line="1")).fare_fen == 200
    staged = [
        one(Ride(ride_id="b", at=at(7, 12), line="k2", board="k1", alight=stop)).fare_fen
        for stop in ("k5", "k6", "k11")
    ]
    assert staged == [100, 200, 300]
    # Without the stop where the rider got off, the top stage; travelling backwards counts the same stops.
    assert one(Ride(ride_id="c", at=at(7, 12), line="k2", board="k3")).fare_fen == 300
    assert one(Ride(ride_id="d", at=at(7, 12), line="k2", board="k9", alight="k5")).fare_fen == 100


def test_concessions_from_birth_date_and_eligibility_with_expiry() -> None:
    noon = at(7, 12)  # a Saturday
    ride = Ride(ride_id="r", at=noon, line="1")
    sixty_five = Rider(birth_date=dt.date(1961, 2, 7))  # 65 on the ride's day
    just_under = Rider(birth_date=dt.date(1966, 2, 8))  # turns 60 the day after
    seventy = Rider(birth_date=dt.date(1956, 2, 7))
    assert one(ride, sixty_five).fare_fen == 100 and one(ride, sixty_five).concession == "senior_60"
    assert one(ride, just_under).fare_fen == 200 and one(ride, just_under).concession is None
    assert one(ride, seventy).fare_fen == 0 and one(ride, seventy).concession_off_fen == 200
    student = Rider(eligibilities=(Eligibility(category="student", expires_at=at(7, 12, 1)),))
    assert one(ride, student).fare_fen == 100
    assert one(Ride(ride_id="r2", at=at(7, 12, 1), line="1"), student).fare_fen == 200  # expired
    # The cheapest category wins: a 65-year-old veteran rides free.
    veteran = Rider(
        birth_date=dt.date(1961, 2, 7), eligibilities=(Eligibility(category="veteran", expires_at=at(28, 0)),)
    )
    assert one(ride, veteran).concession == "veteran" and one(ride, veteran).fare_fen == 0


def test_peak_hours_suspend_the_named_concession_on_weekdays_only() -> None:
    sixty_five = Rider(birth_date=dt.date(1961, 1, 1))
    monday_peak = one(Ride(ride_id="p", at=at(2, 8, 30), line="1"), sixty_five)
    saturday_same_time = one(Ride(ride_id="q", at=at(7, 8, 30), line="1"), sixty_five)
    monday_after = one(Ride(ride_id="s", at=at(2, 9, 0), line="1"), sixty_five)
    assert (monday_peak.fare_fen, saturday_same_time.fare_fen, monday_after.fare_fen) == (200, 100, 100)
    # 70 and over is not suspended at peak.
    assert (
        one(Ride(ride_id="t", at=at(2, 8, 30), line="1"), Rider(birth_date=dt.date(1950, 1, 1))).fare_fen == 0
    )


def test_transfer_within_the_window_on_another_line_once_per_journey() -> None:
    rides = [
        Ride(ride_id="1", at=at(7, 10, 0), line="1"),
        Ride(ride_id="2", at=at(7, 10, 40), line="3"),  # transfer: 150 - 100
        Ride(
            ride_id="3", at=at(7, 11, 10), line="1"
        ),  # within 60 min of the transfer, but a transfer already
        Ride(ride_id="4", at=at(7, 14, 0), line="1"),  # same line as the last: no transfer
        Ride(ride_id="5", at=at(7, 15, 1), line="3"),  # 61 min later: too late
    ]
    priced = price_rides(SCHEDULE, Rider(), rides)
    assert [(p.transfer, p.fare_fen) for p in priced] == [
        (False, 200),
        (True, 50),
        (False, 200),
        (False, 150),
        (False, 0),
    ]
    # The daily cap of 600 took the last ride's whole 150: 200 + 50 + 200 + 150 = 600.
    assert priced[-1].cap_off_fen == 150


def test_daily_cap_resets_each_county_day_and_monthly_cap_holds() -> None:
    rides = []
    for day in range(1, 28):
        for hour in (6, 10, 12, 16, 20):  # county time; 5 x 200 > the 600 daily cap
            rides.append(Ride(ride_id=f"{day}-{hour}", at=at(day, hour), line="1"))
    priced = price_rides(SCHEDULE, Rider(), rides)
    per_day: dict[dt.date, int] = {}
    for p in priced:
        per_day[p.at.astimezone(CST).date()] = per_day.get(p.at.astimezone(CST).date(), 0) + p.fare_fen
    assert sum(per_day.values()) == 12000  # the monthly cap: 20 days of 600, then free
    assert set(per_day.values()) == {600, 0}
    assert per_day[dt.date(2026, 2, 20)] == 600 and per_day[dt.date(2026, 2, 21)] == 0
    # A new month starts again.
    march = SCHEDULE.price(
        Ride(ride_id="m", at=at(1, 8, month=3), line="3"),
        Rider(),
        FareState(day=dt.date(2026, 2, 27), day_fen=600, month_fen=12000),
    )
    assert march[0].fare_fen == 150 and march[1].month_fen == 150


def test_ride_is_priced_by_the_version_in_force_when_it_happened() -> None:
    before = one(Ride(ride_id="a", at=dt.datetime(2026, 2, 28, 23, 59, tzinfo=CST), line="1"))
    after = one(Ride(ride_id="b", at=dt.datetime(2026, 3, 1, 0, 0, tzinfo=CST), line="1"))
    assert (before.table_version, before.fare_fen) == (1, 200)
    assert (after.table_version, after.fare_fen) == (2, 250)
    with pytest.raises(FareError, match="no fare table"):
        one(Ride(ride_id="c", at=dt.datetime(2025, 12, 31, tzinfo=CST), line="1"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"lines": {"x": {"name": "X", "flat_fen": 100, "stages": [{"up_to_stops": 1, "fare_fen": 1}]}}},
            "not both",
        ),
        ({"lines": {"x": {"name": "X"}}}, "flat_fen or stages"),
        ({"lines": {"x": {"name": "X", "flat_fen": -1}}}, "flat_fen"),
        ({"concessions": {"student": 150}}, "concessions"),
        ({"effective_from": "2026-01-01T00:00:00"}, "time zone"),
        ({"peak": [{"start": "09:00", "end": "07:00"}]}, "ends before"),
        ({"age_bands": [{"category": "elder", "min_age": 60}]}, "no concession"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_table_that_does_not_hold_together_is_refused(change: dict, message: str) -> None:
    with pytest.raises(FareError, match=message):
        FareTable.from_json(msgspec.json.encode({**TABLE_V1, **change}))


@pytest.mark.parametrize("body", [b"version=2", b"", b'{"version": 2', "\ufeff{}".encode(), b"\xff\xfe"])
def test_a_body_that_is_not_json_is_a_fare_error(body: bytes) -> None:
    with pytest.raises(FareError, match="fare table"):
        FareTable.from_json(body)


def test_unknown_line_or_stop_is_a_fare_error() -> None:
    with pytest.raises(FareError, match="unknown line"):
        one(Ride(ride_id="a", at=at(7, 12), line="99"))
    with pytest.raises(FareError, match="unknown stop"):
        one(Ride(ride_id="a", at=at(7, 12), line="k2", board="k1", alight="nowhere"))


# -- the property -----------------------------------------------------------------------------------

LINES = {"1": ["s1", "s2", "s3"], "k2": [f"k{i}" for i in range(12)], "3": []}


@st.composite
def journeys(draw: st.DrawFn) -> tuple[Rider, list[Ride]]:
    birth = draw(st.none() | st.dates(dt.date(1940, 1, 1), dt.date(2015, 12, 31)))
    grants = draw(
        st.lists(
            st.builds(
                Eligibility,
                category=st.sampled_from(["student", "disability", "veteran"]),
                expires_at=st.datetimes(
                    dt.datetime(2026, 1, 1), dt.datetime(2026, 5, 1), timezones=st.just(CST)
                ),
            ),
            max_size=2,
        )
    )
    start = draw(st.datetimes(dt.datetime(2026, 1, 20), dt.datetime(2026, 3, 20), timezones=st.just(CST)))
    rides = []
    t = start
    for i in range(draw(st.integers(1, 12))):
        t += dt.timedelta(minutes=draw(st.integers(0, 60 * 30)))
        line = draw(st.sampled_from(sorted(LINES)))
        stops = LINES[line]
        board = draw(st.none() | st.sampled_from(stops)) if stops else None
        alight = draw(st.none() | st.sampled_from(stops)) if stops else None
        rides.append(Ride(ride_id=f"r{i:02d}", at=t, line=line, board=board, alight=alight))
    return Rider(birth_date=birth, eligibilities=tuple(grants)), rides


@settings(max_examples=100, deadline=None)
@given(journey=journeys(), data=st.data())
def test_online_and_offline_pricing_give_the_same_fare_for_the_same_journey(
    journey: tuple[Rider, list[Ride]], data: st.DataObject
) -> None:
    rider, rides = journey
    # Online: the app prices each scan as it comes, keeping one FareState per rider.
    state = FareState()
    online = []
    for ride in rides:
        priced, state = SCHEDULE.price(ride, rider, state)
        online.append(priced)

    # Offline: the terminal holds the tables as they travel to it (msgpack), and the rides reach settlement
    # late and shuffled; settlement re-prices the rider's rides from scratch.
    terminal_schedule = FareSchedule(
        msgspec.msgpack.decode(msgspec.msgpack.encode(SCHEDULE.tables), type=list[FareTable])
    )
    arrived = data.draw(st.permutations(rides))
    offline = price_rides(terminal_schedule, rider, arrived)

    assert offline == online
    for p in online:
        assert 0 <= p.fare_fen <= p.base_fen + p.peak_fen
        assert (
            p.base_fen + p.peak_fen - p.concession_off_fen - p.transfer_off_fen - p.cap_off_fen == p.fare_fen
        )
    per_day: dict[dt.date, int] = {}
    for p in online:
        day = p.at.astimezone(CST).date()
        per_day[day] = per_day.get(day, 0) + p.fare_fen
    assert max(per_day.values()) <= 600


def test_the_guide_example_runs() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "sdk.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```python\n# fares example\n(.*?)```", text, flags=re.S)
    exec(compile(block, "docs/sdk.md", "exec"), {})


# -- fare tables as terminals receive them: their app's `fares` documents ------------------------------

BUS = "gov.guangde.bus"


def signed_table(world: World, table: dict, **change: object) -> bytes:
    """A fare table version as the platform signs it when the bus app publishes it (`ctx.terminals.publish`)."""
    effective_from = int(dt.datetime.fromisoformat(table["effective_from"]).timestamp())
    args: dict = dict(
        app_id=BUS, name="fares", version=table["version"], effective_from=effective_from,
        content=msgspec.json.encode(table), issued_at=NOW, root_private_key=world.root, root_key_id="root-2026",
    )  # fmt: skip
    return sign_document(**(args | change))


def documents(*envelopes: bytes) -> bytes:
    """A `GET /v1/terminal/documents` answer."""
    return b'{"documents":[' + b",".join(envelopes) + b"]}"


def test_a_terminal_prices_offline_rides_from_its_apps_signed_tables_only(
    world: World, tmp_path: Path
) -> None:
    clock = [float(NOW)]  # 2026-01-01 08:00 county time: version 1 in force
    db = str(tmp_path / "bus.sqlite")

    def terminal() -> Terminal:
        return Terminal(
            root_public_keys=world.roots, db_path=db, clock=lambda: clock[0], clock_source="gnss", app_id=BUS
        )

    first = terminal()
    first.load_trust_list(world.envelope())
    with pytest.raises(TerminalError, match=r"terminal\.no_fares"):
        first.fare("1")
    assert first.load_documents(documents(signed_table(world, TABLE_V1))) == 1
    assert [first.fare("1"), first.fare("k2"), first.fare("k2", board="k1", alight="k3")] == [200, 300, 100]
    holder = world.holder()
    decision = first.scan(holder.ride_code(clock[0]), first.fare("1"))
    assert decision.result == "accept"
    # Version 2 arrives (version 1 is sent again, as the server sends every version): held together.
    assert first.load_documents(documents(signed_table(world, TABLE_V1), signed_table(world, TABLE_V2))) == 2
    assert [(d.version, d.app_id) for d in first.documents("fares")] == [(1, BUS), (2, BUS)]
    first.close()
    # The tables survive a restart; on 2026-03-01 version 2 of the table is in force.
    clock[0] = dt.datetime(2026, 3, 1, 12, tzinfo=CST).timestamp()
    reopened = terminal()
    assert reopened.fare("1") == 250
    assert reopened.document("fares") is not None and reopened.document("fares").version == 2  # type: ignore[union-attr]

    # Refused, all or nothing: another app's table, a root not pinned, another key under the pinned id, a held
    # version replaced, a `fares` version that is no fare table, a tampered document, and the root's signature
    # of the bare document (as on a trust list) instead of the terminal-document context.
    v3 = TABLE_V2 | {"version": 3, "effective_from": "2026-04-01T00:00:00+08:00"}
    cheaper = TABLE_V2 | {"lines": {**TABLE_V2["lines"], "1": {"name": "1路", "flat_fen": 10}}}
    for envelope, error, message in [
        (signed_table(world, v3, app_id="cn.example.other"), DocumentError, "not of this terminal's app"),
        (signed_table(world, v3, root_key_id="elsewhere"), DocumentError, "not pinned"),
        (
            signed_table(world, v3, root_private_key=Ed25519PrivateKey.generate()),
            DocumentError,
            "bad signature",
        ),
        (signed_table(world, cheaper), DocumentError, "version 2 replaced"),
        (signed_table(world, v3, content=b'{"lines":1}'), FareError, "fare table"),
    ]:
        with pytest.raises(error, match=message):
            reopened.load_documents(documents(signed_table(world, v3 | {"version": 4}), envelope))
    wire = msgspec.json.decode(signed_table(world, v3))
    document = base64.b64decode(wire["document"])
    tampered = document.replace(b'"flat_fen":250', b'"flat_fen":25', 1)
    assert tampered != document
    for doc, signature in [
        (tampered, base64.b64decode(wire["signature"])),
        (document, world.root.sign(document)),
    ]:
        forged = msgspec.json.encode(
            wire
            | {"document": base64.b64encode(doc).decode(), "signature": base64.b64encode(signature).decode()}
        )
        with pytest.raises(DocumentError, match="bad signature"):
            reopened.load_documents(documents(forged))
    assert [d.version for d in reopened.documents("fares")] == [1, 2]
    assert reopened.fare("1") == 250
    # A terminal bound to another app's scene applies none of the bus app's documents.
    other = Terminal(
        root_public_keys=world.roots, db_path=str(tmp_path / "clinic.sqlite"), clock=lambda: clock[0],
        clock_source="gnss", app_id="gov.guangde.clinic",
    )  # fmt: skip
    with pytest.raises(DocumentError, match="not of this terminal's app"):
        other.load_documents(documents(signed_table(world, TABLE_V1)))
    assert other.fares is None


def test_the_engine_imports_no_crypto_so_it_runs_in_the_sandbox() -> None:
    # The sandbox's filesystem holds yima_sdk and the app, not cryptography or PyNaCl: an app importing the engine
    # must not pull them in (signing and verifying import them on use).
    code = (
        "import sys, yima_sdk.fares; print(sorted(m for m in ('cryptography', 'nacl') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
