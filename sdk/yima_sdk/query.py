"""The query rules of `ctx.db`, shared by every host so the platform and the simulator give the same answers:
the order-preserving encoding of indexed values, the planner that turns `where` / `order_by` into key ranges of
one declared index, keyset cursors, and the checks on document values.

Index keys. Every declared index of a collection holds, per document, one key: the encoded values of its fields
concatenated. The encoding sorts as the values do (bytewise), type first:

    null (or a missing field) < false < true < numbers < strings

numbers as IEEE-754 doubles with their bits turned so bytes sort like numbers (integers beyond 2**53 cannot be
indexed exactly and are refused), strings as UTF-8 (code point order) with 0x00 escaped and a 0x00 0x00 end, so a
key is a sequence of self-delimiting parts and no part is a prefix of another. 0xFF never starts a part, so
`prefix + 0xFF` is above every key that extends `prefix`.

Planning. `where` maps a field to a value (equality) or to operators: `{"gte": a, "lt": b}` (any of gt, gte, lt,
lte) or `{"in": [a, b]}`. A query is answerable by index (f1, f2, ...) when its fields are an equality prefix
f1..fk, optionally followed by one range or `in` on f(k+1); `order_by` ("field" or "-field" for descending) must
then be a field of that index the result is sorted by. The plan is a list of disjoint key ranges, sorted; the
answer is the documents of those ranges in (key, id) order. Anything else is `NotIndexed` (`db.not_indexed`).
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import msgspec

from yima_sdk.errors import InvalidArgument, NotIndexed

__all__ = [
    "MAX_IN",
    "Plan",
    "check_value",
    "decode_cursor",
    "encode_cursor",
    "encode_key",
    "group_by_index",
    "group_sum",
    "in_ranges",
    "index_keys",
    "indexes_of",
    "number",
    "plan",
]

MAX_IN = 100
"""Values of one `in`."""
_OPERATORS = frozenset({"gt", "gte", "lt", "lte", "in"})
_TOP = b"\xff"
_DOUBLE = struct.Struct(">d")
_EXACT = 2**53
_json = msgspec.json.Encoder()


def encode_part(field: str, value: Any) -> bytes:
    """One value as an order-preserving, self-delimiting key part; InvalidArgument for a value no index holds."""
    if value is None:
        return b"\x01"
    if value is False:
        return b"\x02"
    if value is True:
        return b"\x03"
    if isinstance(value, int | float):
        if isinstance(value, int) and abs(value) > _EXACT:
            raise InvalidArgument(f"field {field!r}: integers beyond 2**53 cannot be indexed")
        number = float(value) + 0.0  # -0.0 sorts as 0.0
        if not math.isfinite(number):
            raise InvalidArgument(f"field {field!r}: only finite numbers can be indexed")
        bits = int.from_bytes(_DOUBLE.pack(number), "big")
        bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | 1 << 63
        return b"\x04" + bits.to_bytes(8, "big")
    if isinstance(value, str):
        return b"\x05" + value.encode("utf-8", "surrogatepass").replace(b"\x00", b"\x00\xff") + b"\x00\x00"
    raise InvalidArgument(
        f"field {field!r} is indexed: its value must be a string, number, boolean or null, "
        f"not {type(value).__name__}"
    )


def decode_part(key: bytes, at: int = 0) -> tuple[Any, int]:
    """The value of the key part at `at` and where the next part starts (for grouping by an index)."""
    tag = key[at]
    if tag == 1:
        return None, at + 1
    if tag in (2, 3):
        return tag == 3, at + 1
    if tag == 4:
        bits = int.from_bytes(key[at + 1 : at + 9], "big")
        bits = bits ^ 1 << 63 if bits >> 63 else bits ^ 0xFFFFFFFFFFFFFFFF
        number: float = _DOUBLE.unpack(bits.to_bytes(8, "big"))[0]
        return (int(number) if number.is_integer() and abs(number) <= _EXACT else number), at + 9
    end = key.index(b"\x00\x00", at + 1)
    while key[end + 1 : end + 2] == b"\xff":  # an escaped 0x00 followed by 0x00 0x00 is not the end
        end = key.index(b"\x00\x00", end + 2)
    raw = key[at + 1 : end].replace(b"\x00\xff", b"\x00")
    return raw.decode("utf-8", "surrogatepass"), end + 2


def encode_key(fields: Iterable[str], document: Mapping[str, Any]) -> bytes:
    """The key of `document` in the index of `fields` (a missing field counts as null)."""
    return b"".join(encode_part(f, document.get(f)) for f in fields)


def index_keys(indexes: Mapping[str, tuple[str, ...]], document: Mapping[str, Any]) -> dict[str, bytes]:
    """Index name -> key of `document`, for every index of its collection."""
    return {name: encode_key(fields, document) for name, fields in indexes.items()}


def check_value(value: Any, max_bytes: int) -> int:
    """The encoded size of a document value; InvalidArgument unless it is a JSON object within `max_bytes`."""
    if not isinstance(value, dict):
        raise InvalidArgument(f"a document is a JSON object, not {type(value).__name__}")
    try:
        size = len(_json.encode(value))
    except (TypeError, msgspec.EncodeError):
        raise InvalidArgument("documents must be JSON-able (dicts, lists, strings, numbers)") from None
    if size > max_bytes:
        raise InvalidArgument(f"document of {size} bytes is over the {max_bytes}-byte limit")
    return size


def indexes_of(collections: dict[str, Any], collection: str) -> dict[str, tuple[str, ...]]:
    """The indexes of a declared collection; NotIndexed for a collection miniapp.toml does not declare."""
    declared = collections.get(collection)
    if declared is None:
        raise NotIndexed(
            f"collection {collection!r} is not declared under [collections] in miniapp.toml "
            f"(declared: {', '.join(sorted(collections)) or 'none'})"
        )
    indexes: dict[str, tuple[str, ...]] = declared.index_fields
    return indexes


def group_by_index(indexes: dict[str, tuple[str, ...]], collection: str, field: str) -> None:
    """`aggregate` groups only by an indexed field."""
    if not any(field in fields for fields in indexes.values()):
        raise NotIndexed(
            f"db.aggregate groups by an indexed field; {field!r} of {collection!r} is not indexed"
        )


def group_sum(total: Decimal | None) -> int | float | None:
    """A group's sum as the reply carries it: an int when whole."""
    if total is None:
        return None
    return int(total) if total == total.to_integral_value() else float(total)


def number(value: Any) -> Decimal | None:
    """A JSON number as an exact decimal (as PostgreSQL's numeric sees it), None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return Decimal(str(value))


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """How to answer a query: scan `ranges` of index `index` (None: the collection by id) in key order, or
    reversed when `descending`. `digest` names the query, so a cursor of another query is refused."""

    index: str | None
    ranges: list[tuple[bytes, bytes]]
    descending: bool = False
    digest: str = ""


def _conditions(where: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each field's conditions as {operator: value}; equality is {"eq": value}."""
    found: dict[str, dict[str, Any]] = {}
    for field, condition in where.items():
        if not isinstance(condition, dict):
            found[field] = {"eq": condition}
            continue
        unknown = set(condition) - _OPERATORS
        if unknown or not condition:
            raise InvalidArgument(
                f"where {field!r}: operators are gt, gte, lt, lte and in, not {sorted(unknown) or 'none'}"
            )
        if "in" in condition:
            if len(condition) > 1:
                raise InvalidArgument(f"where {field!r}: `in` does not combine with other operators")
            values = condition["in"]
            if not isinstance(values, list) or not 1 <= len(values) <= MAX_IN:
                raise InvalidArgument(f"where {field!r}: `in` takes a list of 1-{MAX_IN} values")
        found[field] = dict(condition)
    return found


def _ranges(field: str, prefix: bytes, condition: dict[str, Any] | None) -> list[tuple[bytes, bytes]]:
    if condition is None:
        return [(prefix, prefix + _TOP)]
    if "eq" in condition:
        part = prefix + encode_part(field, condition["eq"])
        return [(part, part + _TOP)]
    if "in" in condition:
        parts = sorted({prefix + encode_part(field, v) for v in condition["in"]})
        return [(p, p + _TOP) for p in parts]
    low, high = prefix, prefix + _TOP
    for operator, value in condition.items():
        part = prefix + encode_part(field, value)
        if operator == "gt":
            low = max(low, part + _TOP)
        elif operator == "gte":
            low = max(low, part)
        elif operator == "lt":
            high = min(high, part)
        else:
            high = min(high, part + _TOP)
    return [(low, high)] if low < high else []


def _fit(fields: tuple[str, ...], conditions: dict[str, dict[str, Any]], order: str | None) -> bool:
    """Whether the index of `fields` answers these conditions sorted by `order`."""
    used = 0
    while used < len(fields) and "eq" in conditions.get(fields[used], {}):
        used += 1
    ranged = used < len(fields) and fields[used] in conditions
    if ranged:
        used += 1
    if set(conditions) != set(fields[:used]):
        return False
    if order is None:
        return True
    sorted_by = fields[:used] if ranged else fields[: used + 1]
    return order in sorted_by


def plan(
    collection: str,
    indexes: Mapping[str, tuple[str, ...]],
    where: Mapping[str, Any],
    order_by: str | None,
) -> Plan:
    """The plan of a query on `collection` with these declared indexes; NotIndexed when none answers it."""
    conditions = _conditions(where)
    descending = order_by is not None and order_by.startswith("-")
    order = order_by[1:] if order_by is not None and descending else order_by
    if not conditions and order is None:
        chosen: str | None = None
        ranges = [(b"", _TOP)]
    else:
        name = next((n for n, f in indexes.items() if _fit(f, conditions, order)), None)
        if name is None:
            declared = ", ".join(f"[{', '.join(f)}]" for f in indexes.values()) or "none"
            asked = ", ".join(sorted(conditions)) or "nothing"
            raise NotIndexed(
                f"no index of collection {collection!r} answers where on {asked}"
                f"{f' ordered by {order}' if order else ''}; declared indexes: {declared} "
                "(declare one under [collections] in miniapp.toml)"
            )
        chosen, fields = name, indexes[name]
        prefix = b""
        ranges = []
        for position, field in enumerate(fields):
            condition = conditions.get(field)
            if condition is not None and "eq" in condition and position < len(fields):
                prefix += encode_part(field, condition["eq"])
                continue
            ranges = _ranges(field, prefix, condition)
            break
        else:
            ranges = [(prefix, prefix + _TOP)]
    digest = hashlib.sha256(
        _json.encode([collection, chosen, [[lo.hex(), hi.hex()] for lo, hi in ranges], descending])
    ).hexdigest()[:16]
    return Plan(index=chosen, ranges=ranges, descending=descending, digest=digest)


def encode_cursor(query: Plan, key: bytes, doc_id: str) -> str:
    """An opaque cursor after the document (`key`, `doc_id`) of this query."""
    raw = _json.encode([query.digest, key.hex(), doc_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(query: Plan, cursor: str) -> tuple[bytes, str]:
    """(key, doc_id) of a cursor of this query; InvalidArgument for a cursor of another query, or not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        digest, key, doc_id = msgspec.json.decode(raw, type=tuple[str, str, str])
        position = bytes.fromhex(key)
    except (ValueError, msgspec.DecodeError):
        raise InvalidArgument("`after` is not a cursor of db.find") from None
    if digest != query.digest:
        raise InvalidArgument("`after` is a cursor of another query")
    return position, doc_id


def in_ranges(query: Plan, key: bytes) -> bool:
    """Whether `key` lies in one of the plan's ranges (for hosts that filter in memory)."""
    return any(lo <= key < hi for lo, hi in query.ranges)
