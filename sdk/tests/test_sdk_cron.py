"""Cron schedules: the parser refuses what is wrong naming the field, and `next_after` agrees with a minute-by-minute
walk that applies the rules directly."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from yima_sdk.cron import COUNTY_TIME, CronError, parse_cron
from yima_sdk.errors import ManifestError
from yima_sdk.manifest import parse_manifest

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 18 * * *", "2026-12-07T17:59:30+08:00", "2026-12-07T18:00:00+08:00"),
        ("0 18 * * *", "2026-12-07T18:00:00+08:00", "2026-12-08T18:00:00+08:00"),  # strictly after
        ("0 18 * * *", "2026-12-07T10:00:00+00:00", "2026-12-08T18:00:00+08:00"),  # = 18:00 county time
        ("*/15 9-10 * * mon-fri", "2026-12-05T12:00:00+08:00", "2026-12-07T09:00:00+08:00"),  # Sat -> Mon
        ("30 8 1,15 * *", "2026-12-15T08:30:00+08:00", "2027-01-01T08:30:00+08:00"),
        ("0 0 29 2 *", "2026-03-01T00:00:00+08:00", "2028-02-29T00:00:00+08:00"),
        ("0 12 13 * 5", "2026-12-07T00:00:00+08:00", "2026-12-11T12:00:00+08:00"),  # 13th OR Friday
        ("0 0 * * 7", "2026-12-07T00:00:00+08:00", "2026-12-13T00:00:00+08:00"),  # 7 is Sunday
        ("5/20 * * dec *", "2026-12-31T23:50:00+08:00", "2027-12-01T00:05:00+08:00"),
    ],
)
def test_next_firing(expression: str, after: str, expected: str) -> None:
    assert parse_cron(expression).next_after(at(after)) == at(expected)


def _matches(fields: list[set[int]], either_day: bool, t: dt.datetime) -> bool:
    minute, hour, dom, month, dow = fields
    weekday = t.isoweekday() % 7
    by_date, by_weekday = t.day in dom, weekday in dow or (weekday == 0 and 7 in dow)
    day = (by_date or by_weekday) if either_day else (by_date and by_weekday)
    return t.minute in minute and t.hour in hour and t.month in month and day


def test_next_after_agrees_with_a_minute_by_minute_walk() -> None:
    rng = random.Random(7)
    expressions = {
        "*/7 */5 * * *": [set(range(0, 60, 7)), set(range(0, 24, 5)), set(range(1, 32)), set(range(1, 13)),
                          set(range(8))],
        "10,40 6-8 */2 * *": [{10, 40}, {6, 7, 8}, set(range(1, 32, 2)), set(range(1, 13)), set(range(8))],
        "0 22 1-7 * 1": [{0}, {22}, set(range(1, 8)), set(range(1, 13)), {1}],
        "45 23 * * 0,6": [{45}, {23}, set(range(1, 32)), set(range(1, 13)), {0, 6}],
    }  # fmt: skip
    for expression, fields in expressions.items():
        schedule = parse_cron(expression)
        either = expression.split()[2] != "*" and expression.split()[4] != "*"
        for _ in range(5):
            after = dt.datetime(2026, 1, 1, tzinfo=COUNTY_TIME) + dt.timedelta(minutes=rng.randrange(500_000))
            walk = after.replace(second=0) + dt.timedelta(minutes=1)
            while not _matches(fields, either, walk):
                walk += dt.timedelta(minutes=1)
            assert schedule.next_after(after.astimezone(UTC)) == walk, (expression, after)


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("0 18 * *", "has 4 fields"),
        ("60 * * * *", "minute: 60 is outside 0-59"),
        ("0 24 * * *", "hour: 24 is outside 0-23"),
        ("0 0 0 * *", "day of month: 0 is outside 1-31"),
        ("0 0 * 13 *", "month: 13 is outside 1-12"),
        ("0 0 * * 8", "day of week: 8 is outside 0-7"),
        ("*/0 * * * *", "minute: step '0' must be a positive number"),
        ("5-1 * * * *", "minute: range '5-1' runs backwards"),
        ("1,,2 * * * *", "minute: empty item"),
        ("x * * * *", "minute: 'x' is not a number"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_bad_schedules_are_refused_naming_the_field(expression: str, says: str) -> None:
    with pytest.raises(CronError, match=says.replace("(", r"\(")):
        parse_cron(expression)


def test_the_manifest_checks_its_schedules() -> None:
    base = 'id = "cn.example.jobs"\nname = "Jobs"\nversion = "1.0.0"\n'
    manifest = parse_manifest(base + '[jobs]\nremind = "0 18 * * *"\n')
    assert manifest.jobs == {"remind": "0 18 * * *"}
    with pytest.raises(ManifestError, match=r"field `jobs.remind`: minute: 61 is outside 0-59"):
        parse_manifest(base + '[jobs]\nremind = "61 18 * * *"\n')
    with pytest.raises(ManifestError, match=r"field `jobs.Remind`: a job name is"):
        parse_manifest(base + '[jobs]\nRemind = "0 18 * * *"\n')
