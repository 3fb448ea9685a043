"""The seam where scan events leave the scan pipeline for the mini-app bound to a scene, and its part comes back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


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


class ScanEventSink(Protocol):
    async def scan_recorded(self, event: ScanEvent) -> AppPart | None:
        """Called after the scan is durable and before it is answered; must keep its own deadline and must not
        raise. None when no app is bound to the scene (or the scan does not concern one)."""
        ...


class NoScanEvents:
    """The default sink: nobody listens."""

    async def scan_recorded(self, event: ScanEvent) -> AppPart | None:
        return None
