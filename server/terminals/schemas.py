"""Wire types of terminals, scene policies and scans."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec
from yima_sdk._staff import UNIT_PATTERN
from yima_sdk._stops import STOP_PATTERN

from server.wire import Inbound, Outbound

TerminalKind = Literal["bus", "clinic", "pharmacy", "scenic", "counter"]
Colour = Literal["green", "yellow", "red"]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class TerminalRequest(Inbound):
    name: Name
    kind: TerminalKind
    scene: Annotated[
        str, msgspec.Meta(min_length=1, max_length=100, description="what it serves: a bus line, a clinic")
    ]
    public_key: Annotated[
        str, msgspec.Meta(min_length=43, max_length=43, description="raw Ed25519, unpadded base64url")
    ]
    unit: Annotated[str, msgspec.Meta(pattern=UNIT_PATTERN, max_length=100)] | None = None
    """The staff unit it serves, `kind:id` in ASCII (`clinic:guangde-people-1`): the mini-app bound to its scene
    receives it with every scan (`event.data.unit`). Fixed at registration."""


class TerminalOut(Outbound):
    id: str
    name: str
    kind: str
    scene: str
    enabled: bool
    created_at: dt.datetime
    token_endpoint: str
    """The `aud` of the terminal's client assertions."""
    clock_offset_ms: int | None = None
    """The terminal's clock minus the server's at its last time sync (`GET /v1/terminal/time`); omitted until the
    first sync. Beyond the clock-skew tolerance (30 s) the terminal refuses valid codes or accepts stale ones."""
    clock_checked_at: dt.datetime | None = None
    unit: str | None = None
    last_signed_in_at: dt.datetime | None = None
    """When the terminal last got a token (`POST /v1/terminal/token`); omitted until its first sign-in."""


EnrolmentCode = Annotated[
    str,
    msgspec.Meta(
        min_length=12, max_length=20, pattern=r"^[A-Za-z0-9 -]+$", description="as the console shows it"
    ),
]


class EnrolmentRequest(Inbound):
    """What the operator names for the terminal that will enrol with the code."""

    name: Name
    kind: TerminalKind
    scene: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    valid_minutes: Annotated[int, msgspec.Meta(ge=5, le=7 * 24 * 60)] = 24 * 60
    unit: Annotated[str, msgspec.Meta(pattern=UNIT_PATTERN, max_length=100)] | None = None
    """The staff unit the terminal will serve (`clinic:guangde-people-1`), as on `POST /v1/admin/terminals`."""


class EnrolmentOut(Outbound):
    code: str
    """Shown once: only its hash is kept. Dashes and case do not matter when it is typed."""
    expires_at: dt.datetime
    name: str
    kind: str
    scene: str
    unit: str | None = None


class EnrolRequest(Inbound):
    code: EnrolmentCode
    public_key: Annotated[
        str, msgspec.Meta(min_length=43, max_length=43, description="raw Ed25519, unpadded base64url")
    ]


class EnrolledTerminal(Outbound):
    """The registered terminal, and the root keys to pin for the trust list and signed time."""

    terminal: TerminalOut
    root_public_keys: dict[str, str]
    """Root key id -> raw Ed25519 public key, unpadded base64url."""
    pass_issuer: int | None = None
    """The issuer whose `app_pass` keys on the trust list sign the passes of our apps (a pass names no issuer):
    the terminal verifies passes with that issuer's pass keys only."""


class SignedTime(Outbound):
    """The server's time signed by the trust-list root and bound to the terminal's nonce; check it with
    `yima_sdk.terminal.verify_server_time` against the pinned root keys."""

    statement: str
    """base64url of the signed statement: the server's time in unix milliseconds and the nonce."""
    signature: str
    """base64url Ed25519 signature over the statement (with its context prefix)."""
    root_key_id: str
    """Which pinned trust-list root signed it."""


class SignedDocument(Outbound):
    """One published version of a terminal document, signed by the trust-list root (yima_sdk.documents)."""

    document: str
    """base64 of the document: JSON `{app_id, name, version, effective_from, issued_at, content}`."""
    signature: str
    """base64 Ed25519 signature over the document (with its context prefix)."""
    root_key_id: str
    """Which pinned trust-list root signed it."""


class TerminalDocuments(Outbound):
    """What the app bound to the terminal's scene published for its terminals: every version of every document
    (check each with `yima_sdk.documents.TerminalDocument.verify`; `Terminal.sync_documents` does)."""

    documents: list[SignedDocument]


class TerminalToken(Outbound):
    access_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret


class ScenePolicyRequest(Inbound):
    allowed_colours: list[Colour]
    show_name: bool
    replay: Literal["once", "per_terminal"]
    accept_ride_codes: bool = False


class ScenePolicyOut(Outbound):
    kind: str
    scene: str
    """'' is the default for every scene of the kind."""
    allowed_colours: list[str]
    show_name: bool
    replay: str
    accept_ride_codes: bool


class ScanRequest(Inbound):
    payload: Annotated[str, msgspec.Meta(max_length=4096)]
    scanned_at: dt.datetime | int
    """When the terminal read the code: ISO 8601, or unix milliseconds."""
    stop: Annotated[str, msgspec.Meta(max_length=200, description=f"pattern {STOP_PATTERN}")] | None = None
    """Where the terminal is (a bus stop: `people-square`), an ASCII id as fare tables name stops; the bound app
    receives it (`event.data.stop`). Omitted: the terminal did not say. Malformed: 400 `scan.stop_invalid`."""
    tap: Literal["on", "off"] = "on"
    """`off`: a rider tapping off (下车刷卡); the app bound to the scene may re-price the ride and give back the
    difference. A code shown to board may be shown once more to tap off."""


class MiniAppLines(Outbound):
    """What the mini-app bound to the scene added to a scan answer."""

    app_id: str
    lines: list[str]
    """At most 4 display lines of 40 characters."""
    missing: bool
    """The app failed or missed the deadline: the scan answer came without its lines."""
    reason: str | None
    """Why it is missing (`miniapp.timeout`, `miniapp.failed`, `miniapp.suspended`...)."""
    admit: bool | None = None
    """The app's verdict where the terminal guards an entry (a gate scanning a ticket pass or a code): false
    keeps the gate shut although `result` is accept (the ticket was used, is for another day...); omitted
    when the app gave none."""


class ScanResponse(Outbound):
    result: Literal["accept", "reject"]
    reason: str | None
    color: Colour | None
    scan_id: str
    name: str | None = None
    """Masked ("王**"), only where the scene policy shows names."""
    credential_type: str | None = None
    repeat: bool = False
    """The same code at the same entry terminal again: the first answer, given again."""
    expires_at: dt.datetime | None = None
    miniapp: MiniAppLines | None = None
    """Omitted when no mini-app is bound to the terminal's scene (or the scan was refused)."""
    clock_offset_ms: int | None = None
    """Present when the terminal's `scanned_at` was off the server's clock by more than the clock-skew tolerance:
    scanned_at minus the server's time, as stored with the scan. The terminal should sync its clock."""


class MyScan(Outbound):
    id: str
    at: dt.datetime
    result: str
    terminal_name: str
    kind: str
    scene: str
    reason: str | None = None
    color: str | None = None
