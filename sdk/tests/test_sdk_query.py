"""yima_sdk.query: index keys sort as their values do, decode back, and the planner answers only what a declared
index can (the contract test holds the platform and the simulator to the same answers)."""

from __future__ import annotations

import random

import pytest
from yima_sdk.errors import InvalidArgument, NotIndexed
from yima_sdk.query import decode_cursor, decode_part, encode_cursor, encode_key, encode_part, plan

INDEXES = {"day": ("day",), "doctor_id+day": ("doctor_id", "day")}


def _rank(value: object) -> tuple[int, object]:
    # the documented order: null < false < true < numbers < strings (by code point)
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1 + int(value), 0)
    if isinstance(value, int | float):
        return (3, value)
    return (4, value)


def test_keys_sort_as_their_values_and_decode_back() -> None:
    rng = random.Random(15)
    values: list[object] = [None, True, False, 0, -0.0, 2**53, -(2**53), 1e300, -1e-300, "", "\x00", "a\x00b"]
    values += [rng.uniform(-1e6, 1e6) for _ in range(200)] + [
        rng.randint(-(10**9), 10**9) for _ in range(200)
    ]
    values += ["".join(chr(rng.choice([0, 1, 65, 97, 255, 0x4E2D, 0x1F600])) for _ in range(rng.randint(0, 4)))
               for _ in range(200)]  # fmt: skip
    by_key = sorted(values, key=lambda v: encode_part("f", v))
    assert [_rank(v) for v in by_key] == sorted(_rank(v) for v in values)
    for value in values:
        assert decode_part(encode_part("f", value)) == (value, len(encode_part("f", value)))
    # compound keys: the first field decides, then the second
    pairs = [(rng.choice(["d1", "d2", "d10"]), rng.choice([None, 3, "x"])) for _ in range(50)]
    ordered = sorted(pairs, key=lambda p: encode_key(("a", "b"), {"a": p[0], "b": p[1]}))
    assert [(p[0], _rank(p[1])) for p in ordered] == sorted((p[0], _rank(p[1])) for p in pairs)


@pytest.mark.parametrize("value", [[1], {"a": 1}, 2**53 + 1])
def test_values_no_index_holds_are_refused(value: object) -> None:
    with pytest.raises(InvalidArgument, match="field 'day'"):
        encode_key(("day",), {"day": value})


@pytest.mark.parametrize(
    ("where", "order_by", "index"),
    [
        ({}, None, None),
        ({"day": "2026-03-02"}, None, "day"),
        ({"day": {"gte": "2026-03-01", "lt": "2026-04-01"}}, "-day", "day"),
        ({"doctor_id": "d1"}, "day", "doctor_id+day"),
        ({"doctor_id": "d1", "day": {"in": ["2026-03-02", "2026-03-01"]}}, "-day", "doctor_id+day"),
        ({}, "doctor_id", "doctor_id+day"),
    ],
)
def test_queries_a_declared_index_answers(where: dict[str, object], order_by: str | None, index: str) -> None:
    assert plan("bookings", INDEXES, where, order_by).index == index


@pytest.mark.parametrize(
    ("where", "order_by"),
    [
        ({"fee": 1}, None),  # no index holds fee
        ({"day": "2026-03-02"}, "doctor_id"),  # sorted by day only
        ({"day": {"gt": "2026-03-01"}, "doctor_id": {"gt": "d1"}}, None),  # two ranges
        ({"doctor_id": {"in": ["d1", "d2"]}}, "day"),  # several doctors are not sorted by day
    ],
)
def test_queries_no_declared_index_answers_are_not_indexed(
    where: dict[str, object], order_by: str | None
) -> None:
    with pytest.raises(NotIndexed, match=r"declared indexes: \[day\], \[doctor_id, day\]"):
        plan("bookings", INDEXES, where, order_by)


def test_ranges_are_disjoint_and_sorted_and_a_cursor_belongs_to_its_query() -> None:
    query = plan("bookings", INDEXES, {"doctor_id": "d1", "day": {"in": ["b", "a", "b"]}}, None)
    assert len(query.ranges) == 2 and query.ranges[0][1] <= query.ranges[1][0]
    assert plan("bookings", INDEXES, {"day": {"gt": "b", "lt": "a"}}, None).ranges == []
    cursor = encode_cursor(query, query.ranges[0][0], "doc1")
    assert decode_cursor(query, cursor) == (query.ranges[0][0], "doc1")
    other = plan("bookings", INDEXES, {"doctor_id": "d2"}, None)
    with pytest.raises(InvalidArgument, match="another query"):
        decode_cursor(other, cursor)
    with pytest.raises(InvalidArgument, match="not a cursor"):
        decode_cursor(query, "not-a-cursor")
