"""The simulated terminal lists (`ctx.terminals.hold` / `drop`): entries per (list, unit), bound to fixture
residents by holder tags as production binds them (yima_sdk.lists), and what a terminal of a unit syncs."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from yima_sdk import contract as c
from yima_sdk.errors import QuotaExceeded
from yima_sdk.lists import ListChanges, ListEntry, ListSalt, holder_tag, tag_buckets
from yima_sdk.simulator._credentials import ANKANG_PERIOD_S, ANKANG_VALIDITY_S

if TYPE_CHECKING:
    from yima_sdk.simulator._platform import SimulatedPlatform

__all__ = ["SimulatedLists"]

CLOCK_SKEW_S = 30.0
"""The verifiers' clock tolerance the tags cover (a `yima_sdk.terminal.Terminal`'s default)."""
_json = msgspec.json.Decoder()


@dataclass
class _Held:
    seq: int
    dropped: bool
    value: bytes
    valid_from: int
    expires_at: int
    pass_number: int | None = None
    holder: str | None = None
    first_bucket: int | None = None
    tags: bytes | None = None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class SimulatedLists:
    """`terminals.hold` / `terminals.drop` of one simulated app."""

    def __init__(self, platform: SimulatedPlatform) -> None:
        self.platform = platform
        self.quota = c.MAX_LIST_ENTRIES
        """Unexpired entries and tombstones of one list at one unit, as production's cap."""
        self.entries: dict[tuple[str, str, str], _Held] = {}
        """(list, unit, key) -> the entry or its tombstone."""
        self._changes: dict[str, int] = {}
        self._salts: dict[tuple[str, str], bytes] = {}

    def _next(self, unit: str) -> int:
        self._changes[unit] = self._changes.get(unit, 0) + 1
        return self._changes[unit]

    def hold(self, op: c.TerminalsHold) -> c.HeldEntry:
        now = self.platform.clock()
        value = c.check_hold(op, now)
        valid_from = op.valid_from or 0
        holder = None if op.user_id is None else self.platform._reachable(op.user_id).name
        pass_number = None if op.pass_id is None else c.id_number(op.pass_id)
        reply = c.HeldEntry(
            list=op.list, unit=op.unit, key=op.key, valid_from=valid_from, expires_at=op.expires_at,
            bound=holder is not None, pass_id=op.pass_id,
        )  # fmt: skip
        at = (op.list, op.unit, op.key)
        held = self.entries.get(at)
        live = held is not None and not held.dropped and held.expires_at > now
        if live and held is not None:
            same = (held.value, held.valid_from, held.expires_at, held.pass_number, held.holder)
            if same == (value, valid_from, op.expires_at, pass_number, holder):
                return reply
        if not live and self._held(op.list, op.unit, op.key, now) >= self.quota:
            raise QuotaExceeded(
                f"at most {self.quota} entries or drops in list {op.list} at {op.unit} until they expire"
            )
        salt = self._salts.setdefault((op.list, op.unit), secrets.token_bytes(16))
        first, tags = None, None
        if holder is not None:
            buckets = tag_buckets(max(valid_from, now), op.expires_at, period_s=ANKANG_PERIOD_S,
                                  validity_s=ANKANG_VALIDITY_S, skew_s=CLOCK_SKEW_S)  # fmt: skip
            refs = (self.platform.credentials.subject_ref(holder, bucket) for bucket in buckets)
            first, tags = buckets.start, b"".join(holder_tag(salt, ref) for ref in refs)
        self.entries[at] = _Held(
            self._next(op.unit), False, value, valid_from, op.expires_at, pass_number, holder, first, tags
        )
        return reply

    def _held(self, list_name: str, unit: str, key: str, now: float) -> int:
        """Unexpired entries and tombstones but `key`'s, as production counts them."""
        return sum(
            1
            for (n, u, k), held in self.entries.items()
            if (n, u) == (list_name, unit) and k != key and held.expires_at > now
        )

    def drop(self, op: c.TerminalsDrop) -> bool:
        held = self.entries.get((op.list, op.unit, op.key))
        if held is None or held.dropped or held.expires_at <= self.platform.clock():
            return False
        self.entries[(op.list, op.unit, op.key)] = _Held(
            self._next(op.unit), True, b"{}", held.valid_from, held.expires_at
        )
        return True

    def changes(self, unit: str, after: int = 0) -> bytes:
        """What `GET /v1/terminal/lists?after=N` answers a terminal registered for `unit` at one of this app's
        scenes (every change in one answer), for `Terminal.load_lists`."""
        now = self.platform.clock()
        upto = self._changes.get(unit, 0)
        reset = after > upto
        after = 0 if reset else after
        found = sorted(
            ((n, k, held) for (n, u, k), held in self.entries.items() if u == unit and held.seq > after),
            key=lambda item: item[2].seq,
        )
        entries = [_entry(n, k, held) for n, k, held in found if held.expires_at > now]
        salts = [
            ListSalt(list=n, salt=_b64(salt)) for (n, u), salt in sorted(self._salts.items()) if u == unit
        ]
        answer = ListChanges(
            app_id=self.platform.manifest.id, unit=unit, cursor=upto, more=False, period_s=ANKANG_PERIOD_S,
            salts=salts, entries=entries, reset=reset,
        )  # fmt: skip
        return msgspec.json.encode(answer)


def _entry(list_name: str, key: str, held: _Held) -> ListEntry:
    if held.dropped:
        return ListEntry(list=list_name, key=key, seq=held.seq, dropped=True)
    value: Any = _json.decode(held.value)
    return ListEntry(
        list=list_name, key=key, seq=held.seq, value=value, valid_from=held.valid_from,
        expires_at=held.expires_at, pass_number=held.pass_number, first_bucket=held.first_bucket,
        tags=None if held.tags is None else _b64(held.tags),
    )  # fmt: skip
