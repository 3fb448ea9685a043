"""The sandbox bridge wire protocol: length-prefixed msgspec msgpack frames of tagged-union messages.

One frame = 4-byte big-endian body length + msgpack body (framing, the same for any message: `yima_sdk._frames`,
re-exported here). Every message is an array-like Struct tagged in field
`t`, so a frame decodes straight into the right class and is dispatched with `match`. The host and the worker
each decode only the messages the *other* side may send; both decoders are built once here.

    host -> worker: Init, Call, CapabilityReply
    worker -> host: Ready, StartFailed, Result, Failure, CapabilityRequest

Both sides use `FrameProtocol` (an asyncio Protocol) over their end of a socketpair. A frame longer than the
agreed limit, or one that does not decode, raises `FrameError`: the host answers it by killing the worker.
Messages evolve only by appending fields with defaults.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from typing import Any, Literal, TypeVar, overload

import msgspec

from yima_sdk._frames import (
    DEFAULT_MAX_FRAME,
    FrameDecoder,
    FrameError,
    FrameProtocol,
    FrameTooLarge,
    StreamTransport,
    encode_frame,
    read_frame_blocking,
)
from yima_sdk.contract import RecordPage

__all__ = [
    "DEFAULT_MAX_FRAME",
    "Call",
    "CapabilityReply",
    "CapabilityRequest",
    "Failure",
    "FrameDecoder",
    "FrameError",
    "FrameProtocol",
    "FrameTooLarge",
    "HostMessage",
    "Init",
    "JobEvent",
    "LayerReport",
    "Ready",
    "Request",
    "Response",
    "Result",
    "ScanData",
    "ScanEvent",
    "ScannedPass",
    "StartFailed",
    "StreamTransport",
    "WorkerMessage",
    "encode_frame",
    "read_frame_blocking",
]

T = TypeVar("T")


class _Wire(msgspec.Struct, array_like=True, tag_field="t", forbid_unknown_fields=True, kw_only=True):
    """Base of bridge messages: array-like for small fast frames; tagged so a union decodes in one pass;
    unknown fields refused because each side treats the other as untrusted."""


# ---- application payloads -------------------------------------------------------------------------------


class Request(_Wire, tag="http"):
    """One HTTP request to a mini-app, as the gateway forwards it (already authenticated)."""

    method: str
    path: str
    query: dict[str, str] = {}
    headers: dict[str, str] = {}
    body: bytes = b""
    user_id: str | None = None
    """The app-scoped pseudonymous id of the resident, never the resident's real id."""
    path_params: dict[str, str] = {}
    """Filled by the worker from the matched route, e.g. `{"id": "42"}` for `/books/{id}`."""
    received_at: dt.datetime | None = None
    """When the platform received the request (UTC; always set by the gateway and the simulator). Rules in
    time (a cut-off, an opening hour) read it rather than the worker's clock, so the simulator's `advance`
    moves them too."""

    @overload
    def json(self) -> Any: ...
    @overload
    def json(self, type: type[T]) -> T: ...
    def json(self, type: Any = Any) -> Any:
        """The body decoded as JSON; with a type (e.g. a msgspec Struct), decoded and checked as that type.
        A body that does not decode raises InvalidRequest naming the field (the caller gets 400
        `request.invalid`, unless the handler catches it)."""
        from yima_sdk.errors import InvalidRequest

        try:
            return msgspec.json.decode(self.body, type=type)
        except msgspec.ValidationError as exc:
            raise InvalidRequest(f"the request body is not valid: {exc}") from None
        except msgspec.DecodeError as exc:
            raise InvalidRequest(f"the request body is not JSON: {exc}") from None


class ScannedPass(msgspec.Struct, frozen=True, kw_only=True):
    """An app pass a terminal scanned (a ticket shown at a gate): its signature and expiry checked, not revoked,
    and honoured by this app (issued by it, or shared with it and the holder consented). It names no one: the
    event's `user_id` is the holder's, where the holder uses this app."""

    id: str
    """`pass_12`, as `credentials.issue_pass` answered."""
    app: str
    """The issuing app."""
    kind: str
    data: dict[str, Any] = {}
    """What the issuing app put in the pass."""
    valid_until: int = 0


class ScanData(msgspec.Struct, frozen=True, kw_only=True):
    """What the platform tells a scan handler about the scan. Unknown fields are accepted on purpose: the
    platform appends fields with defaults, and an app on an older SDK keeps working."""

    scan_id: str = ""
    """The platform's id of the recorded scan (unique; use it to make the handler idempotent)."""
    scanned_at: dt.datetime | None = None
    """When the terminal scanned the code (UTC; always set by the platform and the simulator)."""
    mode: Literal["online", "offline"] = "online"
    """`offline`: the terminal scanned without a connection and uploaded the scan later; nobody waits for
    the handler's lines then."""
    credential_type: str | None = None
    """`ankang_code` or `ride_code`."""
    amount_fen: int | None = None
    """The fare or amount the terminal charged with the scan (bus fares on offline ride codes), if any."""
    unit: str | None = None
    """The staff unit the terminal serves (`clinic:guangde-people-1`), set by the operator when registering
    it; None when it was registered without one."""
    issuer: int | None = None
    """The administrative division code of the scanned code's issuer: 341822 for Guangde's own codes, a partner
    county's (330522 Changxing ...) for codes on the trust list it signed; None without a verified code."""
    settled_fen: int | None = None
    """An offline ride code's fare as settlement charged it (once) to the rider's one-card: re-priced with the
    `fares` table this app published that was in force when the ride happened (`amount_fen` is what the terminal
    priced; they differ when the terminal held an older table). None when nothing was settled."""
    app_pass: ScannedPass | None = None
    """Set when the terminal scanned an app pass (`credential_type` `app_pass`) rather than a code."""
    health_color: str | None = None
    """The scanned Ankang code's colour (`green`, `yellow`, `red`) as the terminal's scene policy judged it, only
    when the app declares the `health_color` scope and the resident (named in `user_id`) granted it; else None.
    What `ctx.user.scope("health_color")` would answer, without the call: a check-in reads it at once."""
    payment_id: str | None = None
    """An offline ride that settlement charged (`settled_fen` > 0): `ride_<scan id>`, which this app (bound to
    the scene) may refund part of with `ctx.payments.refund`, e.g. the rider's concession, transfer or cap that
    the terminal's table price could not know. None otherwise."""
    preloaded: dict[str, RecordPage] = {}
    """The pages of the finds the manifest's `[scan_preload.<scene kind>]` declares, by name, as `ctx.db.find`
    would have answered them at the scan: the handler reads them without a round trip. A find on `$user_id` is
    missing for a scan naming nobody, and so is one that failed (the app's log says why)."""
    stop: str | None = None
    """Where the terminal said it was when it scanned: an ASCII id (`people-square`, the ids a fare table names
    its stops by); None when it did not say (terminals older than stops never do)."""
    tap: Literal["on", "off"] = "on"
    """`off`: the rider tapping off (下车刷卡) at `stop`: nothing was charged with this scan; a bus app re-prices
    the ride by stops travelled and gives back the difference. `on` for a boarding, and every other scan."""
    holder_ref: str | None = None
    """A pseudonym of the scanned code's holder when the app cannot know the resident: a partner county's code
    (一卡通行, `user_id` None, `issuer` a partner's). `h_` + 26 base32 characters, a keyed hash (the platform's
    secret) of the app, the issuer and the ride code's device certificate serial, or the Ankang code's subject
    ref: the same for every scan of that credential in this app (a ride code: its certificate's life, renewed
    about monthly; an Ankang code: until its generation changes), different in every other app, never the serial
    or ref itself. Use it to tie scans of one partner rider together (a tap-off to its boarding). None for our own
    residents' codes (they have `user_id`, or are not known to this app) and for app passes."""
    terminal_admitted: bool | None = None
    """An offline scan of a gate that decided it by its synced lists (`Terminal.admit`): whether the gate let the
    holder in. False: the gate stayed shut (the visitor did not go through), settle the scan as a refused entry.
    None for online scans and for offline scans no gate decided (terminals older than this never say)."""
    terminal_reason: str | None = None
    """Why that gate refused: `list.no_entry`, `list.used_up`, `list.closed`, a `credential.*` code; else None."""


class ScanEvent(_Wire, tag="scan"):
    """A terminal scan delivered to the mini-app subscribed to its scene."""

    scene_kind: str
    scene_id: str = ""
    terminal_id: str = ""
    user_id: str | None = None
    data: ScanData = msgspec.field(default_factory=ScanData)


class JobEvent(_Wire, tag="job"):
    """A job the platform runs: a firing of a `[jobs]` schedule or a one-shot `ctx.jobs.schedule`. Jobs run at
    least once: a job that fails, or whose node dies, runs again with the same `job_id` (use it to make the
    handler idempotent) and the next `attempt`."""

    name: str
    job_id: str
    """`job_12` for a one-shot job; `job_3.1765101600` for the firing of a schedule at that Unix time."""
    data: dict[str, Any] = {}
    """What `ctx.jobs.schedule` was given (empty for schedules)."""
    attempt: int = 1
    scheduled_at: dt.datetime | None = None
    """When the job was due (UTC)."""
    user_id: str | None = None
    """Always None: a job runs for the app, not for a resident."""


class Response(_Wire, tag="resp"):
    """What an HTTP handler answers; handlers may also return any JSON-able value (status 200)."""

    status: int = 200
    headers: dict[str, str] = {}
    body: bytes = b""

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Response:
        return cls(
            status=status, headers={"content-type": "application/json"}, body=msgspec.json.encode(value)
        )

    @classmethod
    def csv(cls, rows: Iterable[Sequence[Any]], filename: str, status: int = 200) -> Response:
        """`rows` (the first one the header) as a UTF-8 CSV download named `filename` (ASCII letters, digits,
        `._-`; ending `.csv`). A text cell starting with `= + - @` or a tab is prefixed with `'`, so a
        spreadsheet shows it rather than running it as a formula; numbers stay numbers."""
        from yima_sdk.contract import check_filename

        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        for row in rows:
            writer.writerow([_csv_cell(cell) for cell in row])
        return cls(
            status=status,
            headers={
                "content-type": "text/csv; charset=utf-8",
                "content-disposition": f'attachment; filename="{check_filename(filename, ".csv")}"',
            },
            body=out.getvalue().encode(),
        )


def _csv_cell(cell: Any) -> Any:
    if isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + cell
    return "" if cell is None else cell


class LayerReport(_Wire, tag="layer"):
    """One isolation layer as the worker itself observed it after applying it."""

    name: str
    in_force: bool
    detail: str = ""


# ---- host -> worker ---------------------------------------------------------------------------------------


class Init(_Wire, tag="init"):
    """First frame: which app to load and which layers to apply."""

    app_folder: str
    entry: str
    app_id: str
    version: str
    capabilities: list[str] = []
    layers: list[str] = []
    memory_mb: int = 64
    cpu_seconds: int = 60
    max_frame: int = DEFAULT_MAX_FRAME
    uid: int = 65534
    gid: int = 65534
    open_files: int = 64
    processes: int = 512


class Call(_Wire, tag="call"):
    id: int
    request: Request | ScanEvent | JobEvent


class CapabilityReply(_Wire, tag="cap_reply"):
    id: int
    ok: bool
    value: Any = None
    code: str = ""
    message: str = ""


# ---- worker -> host ---------------------------------------------------------------------------------------


class Ready(_Wire, tag="ready"):
    pid: int
    layers: list[LayerReport]
    startup_ms: float = 0.0


class StartFailed(_Wire, tag="start_failed"):
    code: str
    message: str
    layers: list[LayerReport] = []


class Result(_Wire, tag="result"):
    id: int
    response: Response | None = None
    value: Any = None


class Failure(_Wire, tag="failure"):
    id: int
    code: str
    message: str


class CapabilityRequest(_Wire, tag="cap"):
    call_id: int
    id: int
    capability: str
    operation: str
    args: list[Any] = []
    kwargs: dict[str, Any] = {}


HostMessage = Init | Call | CapabilityReply
WorkerMessage = Ready | StartFailed | Result | Failure | CapabilityRequest

HOST_DECODER: msgspec.msgpack.Decoder[HostMessage] = msgspec.msgpack.Decoder(HostMessage)  # type: ignore[arg-type]
WORKER_DECODER: msgspec.msgpack.Decoder[WorkerMessage] = msgspec.msgpack.Decoder(WorkerMessage)  # type: ignore[arg-type]
