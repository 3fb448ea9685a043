"""Five-field cron schedules in county time: `parse_cron("0 18 * * *")` and `CronSchedule.next_after(t)`.

    minute hour day-of-month month day-of-week
    0-59   0-23 1-31         1-12  0-7 (0 and 7 are Sunday)

Each field is `*`, a value, a range `a-b`, a step `*/n`, `a-b/n` or `a/n` (from a to the field's end), or a
comma-separated list of these; months and days of the week may be named (`jan`, `mon`). As in Vixie cron,
when both day-of-month and day-of-week are restricted (neither starts with `*`) a day matches if either does.
A schedule that can never fire (`0 0 30 2 *`) is refused.

Written here rather than taken from a library: croniter, the usual choice, is no longer maintained, and the
five-field syntax is small enough to parse and test completely in one module the SDK and the server share.

County time is China Standard Time (Asia/Shanghai), UTC+8 without daylight saving since 1991, so a fixed
offset gives the same answers as the zone database for every time a job can be scheduled, with no tzdata.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

__all__ = ["COUNTY_TIME", "CronError", "CronSchedule", "parse_cron"]

COUNTY_TIME = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
"""The county's time zone: UTC+8, no daylight saving."""

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_SEARCH_DAYS = 8 * 366  # a 29 February can be up to 8 years away (2096 -> 2104)


class CronError(ValueError):
    """A cron expression that does not parse, or never fires; the message says which field and why."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    name_base: int = 0


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, tuple(_MONTHS), 1),
    _Field("day of week", 0, 7, tuple(_DAYS), 0),
)


def _value(text: str, field: _Field) -> int:
    lowered = text.lower()
    if lowered in field.names:
        return field.names.index(lowered) + field.name_base
    if not text.isascii() or not text.isdigit():
        raise CronError(f"{field.name}: {text!r} is not a number")
    number = int(text)
    if not field.low <= number <= field.high:
        raise CronError(f"{field.name}: {number} is outside {field.low}-{field.high}")
    return number


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        span, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isascii() or not step_text.isdigit() or int(step_text) < 1:
                raise CronError(f"{field.name}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if span == "*":
            low, high = field.low, field.high
        elif "-" in span:
            first, _, last = span.partition("-")
            low, high = _value(first, field), _value(last, field)
            if low > high:
                raise CronError(f"{field.name}: range {span!r} runs backwards")
        elif span:
            low = _value(span, field)
            high = field.high if slash else low
        else:
            raise CronError(f"{field.name}: empty item in {text!r}")
        values.update(range(low, high + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed five-field schedule; `next_after` finds its next firing."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 = Sunday ... 6 = Saturday (7 is folded into 0)."""
    either_day: bool
    """Both day fields are restricted: a day matches if either does."""

    def _day_matches(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        by_date = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        return (by_date or by_weekday) if self.either_day else (by_date and by_weekday)

    def next_after(self, after: dt.datetime) -> dt.datetime:
        """The first firing strictly after `after` (an aware datetime), in county time."""
        if after.tzinfo is None:
            raise ValueError("next_after needs an aware datetime")
        start = after.astimezone(COUNTY_TIME).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        day = start.date()
        for _ in range(_SEARCH_DAYS):
            if self._day_matches(day):
                first_day = day == start.date()
                for hour in self.hours:
                    if first_day and hour < start.hour:
                        continue
                    for minute in self.minutes:
                        if first_day and hour == start.hour and minute < start.minute:
                            continue
                        return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=COUNTY_TIME)
            day += dt.timedelta(days=1)
        raise CronError(f"{self.expression!r} never fires")


def parse_cron(expression: str) -> CronSchedule:
    """Parse five whitespace-separated fields; CronError names the field that is wrong."""
    fields = expression.split()
    if len(fields) != 5:
        raise CronError(
            f"{expression!r} has {len(fields)} fields; a schedule has 5: minute hour day-of-month month "
            "day-of-week"
        )
    minutes, hours, days, months, weekdays = (
        _parse_field(t, f) for t, f in zip(fields, _FIELDS, strict=True)
    )
    schedule = CronSchedule(
        expression=" ".join(fields),
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=days,
        months=months,
        weekdays=frozenset(d % 7 for d in weekdays),
        either_day=not fields[2].startswith("*") and not fields[4].startswith("*"),
    )
    schedule.next_after(dt.datetime(2000, 1, 1, tzinfo=COUNTY_TIME))  # refuses what never fires
    return schedule
