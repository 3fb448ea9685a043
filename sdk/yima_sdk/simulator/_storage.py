"""The simulated `storage` capability: documents with versions and counters in memory, sharing the app's key quota
with `db` as in production."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from yima_sdk import contract as c
from yima_sdk.errors import CounterOutOfRange, InvalidArgument, QuotaExceeded, VersionConflict

if TYPE_CHECKING:
    from yima_sdk.simulator._platform import SimulatedPlatform

__all__ = ["AppSpace", "SimulatedStorage", "StorageOperation"]

StorageOperation = (
    c.StorageGet
    | c.StorageGetDocument
    | c.StoragePut
    | c.StorageDelete
    | c.StorageList
    | c.StorageCounterAdd
    | c.StorageCounterGet
)
_json = msgspec.json.Encoder()


@dataclass
class _Doc:
    value: Any
    version: int


@dataclass
class AppSpace:
    """One app's storage documents and counters."""

    docs: dict[str, _Doc] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)


class SimulatedStorage:
    """`storage.*` operations of one simulated app (its space is `platform.space`)."""

    def __init__(self, platform: SimulatedPlatform) -> None:
        self.platform = platform

    def handle(self, op: StorageOperation) -> Any:
        space = self.platform.space
        match op:
            case c.StorageGet():
                doc = space.docs.get(op.key)
                return None if doc is None else doc.value
            case c.StorageGetDocument():
                doc = space.docs.get(op.key)
                return None if doc is None else c.Document(key=op.key, value=doc.value, version=doc.version)
            case c.StoragePut():
                return self._put(op)
            case c.StorageDelete():
                doc = space.docs.get(op.key)
                _check_version(op.key, doc, op.expected_version)
                return space.docs.pop(op.key, None) is not None
            case c.StorageList():
                return self._list(op)
            case c.StorageCounterAdd():
                return self._counter_add(op)
            case c.StorageCounterGet():
                return space.counters.get(op.name, 0)

    def _put(self, op: c.StoragePut) -> int:
        space = self.platform.space
        try:
            encoded = _json.encode(op.value)
        except (TypeError, msgspec.EncodeError):
            raise InvalidArgument(
                "storage values must be JSON-able (dicts, lists, strings, numbers)"
            ) from None
        if len(encoded) > c.MAX_VALUE_BYTES:
            raise InvalidArgument(f"value of {len(encoded)} bytes is over the {c.MAX_VALUE_BYTES}-byte limit")
        doc = space.docs.get(op.key)
        _check_version(op.key, doc, op.expected_version)
        if self.platform.switches.quota_exceeded or (doc is None and self._keys_full()):
            raise QuotaExceeded("the app's storage quota is used up")
        version = 1 if doc is None else doc.version + 1
        space.docs[op.key] = _Doc(msgspec.json.decode(encoded), version)  # stored as JSON, as production
        return version

    def _list(self, op: c.StorageList) -> c.Page:
        space = self.platform.space
        after = op.cursor or ""
        keys = sorted(k for k in space.docs if k.startswith(op.prefix) and k > after)
        page = keys[: op.limit]
        items = [c.Document(key=k, value=space.docs[k].value, version=space.docs[k].version) for k in page]
        return c.Page(items=items, cursor=page[-1] if len(keys) > op.limit else None)

    def _keys_full(self) -> bool:
        space = self.platform.space
        # documents and counters share the key quota, as in production
        return (
            len(space.docs) + len(space.counters) + len(self.platform.db.records)
            >= self.platform.storage_quota
        )

    def _counter_add(self, op: c.StorageCounterAdd) -> int:
        space = self.platform.space
        if op.name not in space.counters:
            # a counter is a key from its creation, even when this first add is then out of range
            if self.platform.switches.quota_exceeded or self._keys_full():
                raise QuotaExceeded("the app's storage quota is used up")
            space.counters[op.name] = 0
        value = space.counters[op.name] + op.delta
        if (op.min is not None and value < op.min) or (op.max is not None and value > op.max):
            raise CounterOutOfRange(f"counter {op.name!r} would leave [{op.min}, {op.max}]; it is unchanged")
        space.counters[op.name] = value
        return value


def _check_version(key: str, doc: _Doc | None, expected: int | None) -> None:
    if expected is None:
        return
    current = 0 if doc is None else doc.version
    if current != expected:
        raise VersionConflict(f"{key!r} is at version {current}, not {expected}")
