"""The seam where scan events leave the scan pipeline for the mini-app bound to a scene, and its part comes back."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from yima_sdk.codes import VerifiedCode
from yima_sdk.passes import PassClaims

NOT_READY = "platform.starting"
"""What `ScanEventSink.deliver` answers before the platform has started in this process: tried again soon."""
NOT_ASKED = frozenset(
    {
        NOT_READY,
        "miniapp.busy",  # the app's queue is full (sandbox.busy)
        "miniapp.not_loaded",  # its workers are not started on this node yet (sandbox.unknown_app)
        "miniapp.suspended",  # an operator stopped it for now
        "miniapp.unavailable_here",  # this server cannot run apps (an isolation layer is missing)
        "service.unavailable",  # this server is shutting down
    }
)
"""What `ScanEventSink.deliver` answers when the app could not be asked to handle the event: the outbox puts the
event off with a growing pause and does not count it as one of the app's tries (its handler's own failures do)."""


@dataclass(frozen=True, slots=True)
class ScanEvent:
    scan_id: str
    terminal_id: str
    kind: str
    scene: str
    result: str
    reason: str | None
    credential_type: str | None
    account_id: int | None
    scanned_at: datetime
    mode: str  # "online" or "offline"
    amount_fen: int | None = None
    """The fare the terminal charged with the scan (offline ride records), None when it charged nothing."""
    unit: str | None = None
    """The staff unit the terminal serves (set at registration), None when it has none."""
    issuer: int | None = None
    """The administrative division code of the code's issuer (ours or a partner county's), None without a code."""
    settled_fen: int | None = None
    """What settlement charged for an offline ride (re-priced by the fare table in force at the ride), None when
    nothing was settled."""
    app_pass: PassClaims | None = None
    """A scanned app pass (a ticket): what it says; it names no one (`account_id` is its holder, from the
    issuing app's record)."""
    colour: str | None = None
    """The scanned Ankang code's colour as the scene policy judged it (None for other credentials). Personal
    data: the platform hands it to the bound app only under the resident's `health_color` consent."""
    stop: str | None = None
    """Where the terminal said it was (a bus stop id), None when it did not say."""
    tap: str = "on"
    """"off": a rider tapping off (下车刷卡); "on" for every other scan."""
    terminal_admitted: bool | None = None
    """An offline gate's own verdict (it decided the scan by its synced lists), None when no gate decided it."""
    terminal_reason: str | None = None
    holder: str | None = None
    """A partner county's code (issuer not ours): which credential it is, `<kind>:<issuer>:<serial or subject ref,
    hex>` (holder_of), never handed to an app as it is: the platform gives the bound app only its keyed hash
    (ScanData.holder_ref, server/platform/runtime/ids.py). None for our own codes and for app passes."""


class PassCheck(Protocol):
    """Whether the app bound to a scene honours a scanned pass, and whose it is (server/platform's PassCheck)."""

    @property
    def reason(self) -> str | None:
        """None: honoured; else `credential.revoked`, `credential.other_app`, `credential.share_not_consented`,
        or `policy.credential_type_not_allowed` where no app is bound to the scene."""
        ...

    @property
    def account_id(self) -> int | None:
        """The holder, when the issuing app knows one."""
        ...


@dataclass(frozen=True, slots=True)
class NoPass:
    reason: str | None = "policy.credential_type_not_allowed"
    account_id: int | None = None


class AppPart(Protocol):
    """What the mini-app bound to the scene added to the answer (server/platform's MiniAppPart)."""

    @property
    def app_id(self) -> str: ...
    @property
    def lines(self) -> list[str]: ...
    @property
    def missing(self) -> bool:
        """The app failed or was late; `reason` says which."""
        ...

    @property
    def reason(self) -> str | None: ...

    @property
    def admit(self) -> bool | None:
        """The app's verdict on an entry (a gate): False keeps it shut; None when it gave none."""
        ...


class ScanEventSink(Protocol):
    async def check_pass(self, kind: str, scene: str, app_pass: PassClaims) -> PassCheck:
        """Before a scanned app pass is decided: is it honoured by the app bound to the scene (issued by it,
        or shared with it and the holder consented), not revoked? Must not raise."""
        ...

    def prepare(self, event: ScanEvent) -> Awaitable[object] | None:
        """Called before the scan is durable: start reading what the bound app's event needs (who the resident
        is to it, what it preloads), so that those reads overlap the scan's commit; hand the result to
        `scan_recorded`. None when no app is to hear the scan. Must not raise."""
        ...

    async def scan_recorded(
        self, event: ScanEvent, prepared: Awaitable[object] | None = None
    ) -> AppPart | None:
        """Called after the scan is durable and before it is answered; must keep its own deadline and must not
        raise. None when no app is bound to the scene (or the scan does not concern one). `prepared`: what
        `prepare` started for this scan, if anything."""
        ...

    async def deliver(self, event: ScanEvent, attempt: int) -> str | None:
        """An uploaded offline scan's event, from the outbox (scans/outbox.py): call the bound app's handler and
        wait for it; None once it returned (or nobody is to hear it), else the error (logged for the app), and
        the outbox tries again. Must not raise."""
        ...

    def bound_app(self, kind: str, scene: str) -> str | None:
        """The app bound to the scene now (settlement notes it on an offline ride: that app may refund part)."""
        ...


class NoScanEvents:
    """The default sink: nobody listens."""

    async def check_pass(self, kind: str, scene: str, app_pass: PassClaims) -> PassCheck:
        return NoPass()

    def prepare(self, event: ScanEvent) -> Awaitable[object] | None:
        return None

    async def scan_recorded(
        self, event: ScanEvent, prepared: Awaitable[object] | None = None
    ) -> AppPart | None:
        return None

    async def deliver(self, event: ScanEvent, attempt: int) -> str | None:
        return None

    def bound_app(self, kind: str, scene: str) -> str | None:
        return None


def holder_of(code: VerifiedCode | None, ours: int) -> str | None:
    """The credential a partner county's code stands for (ScanEvent.holder): a ride code's device certificate,
    an Ankang code's subject ref; None for our own codes (their holder is an account) and app passes."""
    if code is None or code.issuer == ours:
        return None
    if code.kind == "ride_code" and code.certificate_serial:
        return f"ride_code:{code.issuer}:{code.certificate_serial.hex()}"
    if code.kind == "ankang_code" and code.subject_ref:
        return f"ankang_code:{code.issuer}:{code.subject_ref.hex()}"
    return None
