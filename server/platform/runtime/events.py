"""Scan events: the terminals domain's ScanEventSink, delivering accepted scans to the app bound to the scene.

The app's handler (`@app.on_scan("clinic")`) receives the scene, a typed `ScanData` (scan id, time, mode,
credential type, amount, the terminal's staff unit; the code's colour only under the resident's `health_color`
consent), and the resident's app-scoped id only if the resident uses the app (else None: a scan
at a bound terminal does not link a resident to an app). It may answer display lines for the terminal: None
or `{"lines": [...]}` with at most 4 lines of 40 characters (`yima_sdk.contract.scan_lines`, the same check as
the simulator's). Any other answer is not dropped silently: the app's part is marked missing with
`miniapp.bad_scan_reply` and the reason is logged for the app's developer. The scan answer never waits longer
than the deadline: a late or failing app gives `MiniAppPart(missing=True)` and the terminal shows the scan
result without the app's part.

The finds the app's manifest declares under `[scan_preload.<kind>]` (today's booking of the resident at a
check-in) run here, before the event leaves, as the app's own `ctx.db.find` would: their pages travel with the
event (`event.data.preloaded`), so the handler reads them without a round trip out of the sandbox. The scan
pipeline asks for those reads (`prepare`) before the scan's record commits, so they overlap the commit; the
event still leaves only once the scan is durable.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from yima_sdk import ScanData, ScannedPass
from yima_sdk import ScanEvent as AppScanEvent
from yima_sdk import contract as c
from yima_sdk.contract import scan_reply
from yima_sdk.errors import BadScanReply, YimaError
from yima_sdk.passes import PassClaims

from sandbox.capabilities import CallInfo
from sandbox.errors import SandboxError
from server.platform import errors as e
from server.platform.runtime.service import LiveVersion

if TYPE_CHECKING:
    from server.platform.service import Platform

log = logging.getLogger("yima.platform.scans")
NOT_READY = "platform.starting"  # server.terminals.events.NOT_READY: the outbox tries again soon
COLOUR_SCOPE = "health_color"


@dataclass(frozen=True)
class MiniAppPart:
    """What a bound app added to a scan answer; `missing` when it failed or was late (`reason` says which)."""

    app_id: str
    lines: list[str] = field(default_factory=list)
    missing: bool = False
    reason: str | None = None
    admit: bool | None = None
    """The app's verdict on an entry (`{"admit": false}` keeps a gate shut), None when it gave none."""


@dataclass(frozen=True)
class PassCheck:
    """Whether the app bound to a scene honours a scanned pass (None, or the refusal), and whose it is."""

    reason: str | None
    account_id: int | None = None


def _scanned(claims: PassClaims | None) -> ScannedPass | None:
    if claims is None:
        return None
    return ScannedPass(
        id=f"pass_{claims.p}", app=claims.a, kind=claims.k, data=claims.d, valid_until=claims.exp
    )


def _dropped(task: asyncio.Task[Any]) -> None:
    """A prepared event nobody asked for (the scan was not recorded) must not log an unretrieved error."""
    if not task.cancelled():
        task.exception()


class ScanFacts(Protocol):
    """What the platform reads of a recorded scan (the terminals domain's ScanEvent)."""

    @property
    def scan_id(self) -> str: ...
    @property
    def terminal_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def scene(self) -> str: ...
    @property
    def result(self) -> str: ...
    @property
    def credential_type(self) -> str | None: ...
    @property
    def account_id(self) -> int | None: ...
    @property
    def scanned_at(self) -> dt.datetime: ...
    @property
    def mode(self) -> str: ...
    @property
    def amount_fen(self) -> int | None: ...
    @property
    def unit(self) -> str | None: ...
    @property
    def issuer(self) -> int | None: ...
    @property
    def settled_fen(self) -> int | None: ...
    @property
    def app_pass(self) -> PassClaims | None: ...
    @property
    def colour(self) -> str | None: ...
    @property
    def stop(self) -> str | None: ...
    @property
    def tap(self) -> str: ...
    @property
    def terminal_admitted(self) -> bool | None: ...
    @property
    def terminal_reason(self) -> str | None: ...
    @property
    def holder(self) -> str | None: ...


class PlatformScanSink:
    """Handed to the terminals plugin in `create_app`; bound to the platform at start-up."""

    def __init__(self) -> None:
        self.platform: Platform | None = None
        self._background: set[asyncio.Task[Any]] = set()

    async def check_pass(self, kind: str, scene: str, app_pass: PassClaims) -> PassCheck:
        """Is the scanned pass honoured by the app bound to the scene (issued by it, or shared with it and the
        holder consented), and not revoked? Never raises: a failure refuses the pass."""
        platform = self.platform
        app_id = None if platform is None else platform.runtime.scenes.get((kind, scene))
        if platform is None or app_id is None:
            return PassCheck("policy.credential_type_not_allowed")
        try:
            reason, _, account_id = await platform.caps.honour_pass(app_id, app_pass)
        except Exception as exc:
            log.warning("pass check failed", extra={"app": app_id, "error": type(exc).__name__})
            return PassCheck("scan.pass_unchecked")
        return PassCheck(reason, account_id)

    def bound_app(self, kind: str, scene: str) -> str | None:
        platform = self.platform
        return None if platform is None else platform.runtime.scenes.get((kind, scene))

    def prepare(self, event: ScanFacts) -> asyncio.Task[tuple[str, str, AppScanEvent]] | None:
        """Before the scan is durable: read what the bound app's event needs (its user id, the consent, the
        preloads) in a task, so those reads overlap the scan's commit. None when no app is to hear the scan
        now; never raises. Read-only: a scan that is not recorded (or turns out a replay) just drops it."""
        platform = self.platform
        if platform is None or event.result != "accept" or event.mode != "online":
            return None
        app_id = platform.runtime.scenes.get((event.kind, event.scene))
        if app_id is None:
            return None
        try:
            version = platform.runtime.resolve(app_id, event.account_id)
        except e.AppError:
            return None
        if event.kind not in version.scenes:
            return None
        task = asyncio.ensure_future(self._versioned_event(platform, app_id, version, event))
        task.add_done_callback(_dropped)
        return task

    async def _versioned_event(
        self, platform: Platform, app_id: str, version: LiveVersion, event: ScanFacts
    ) -> tuple[str, str, AppScanEvent]:
        """The app event with the version it was read for, and its scan: used only for that version and scan
        (a release meanwhile changes the scopes and preloads it may have)."""
        return version.key, event.scan_id, await self._app_event(platform, app_id, version, event)

    async def scan_recorded(
        self, event: ScanFacts, prepared: Awaitable[object] | None = None
    ) -> MiniAppPart | None:
        """Called after the scan is durable, before it is answered; never raises, never exceeds the deadline.
        `prepared`: the event `prepare` began to read for this scan."""
        platform = self.platform
        # A code we cannot resolve to a resident (a partner county's) is delivered too, naming nobody: a bus app
        # counts such rides for the partner's clearing.
        if platform is None or event.result != "accept":
            return None
        app_id = platform.runtime.scenes.get((event.kind, event.scene))
        if app_id is None:
            return None
        try:
            return await self._deliver(platform, app_id, event, prepared)
        except Exception as exc:  # the scan answer must come whatever the app or platform does
            log.warning("scan event delivery failed", extra={"app": app_id, "error": type(exc).__name__})
            return MiniAppPart(app_id, missing=True, reason="miniapp.failed")

    async def deliver(self, event: ScanFacts, attempt: int) -> str | None:
        """An uploaded offline scan's event (from the outbox, server/terminals/scans/outbox.py): call the app's
        handler and wait for it. None when it returned, or there is nothing to deliver (a rejected scan, no app
        bound to the scene or subscribed to its kind); else the error, written to the app's log, and the outbox
        tries again later (`NOT_READY`: this process's platform has not started yet)."""
        platform = self.platform
        if platform is None:
            return NOT_READY
        if event.result != "accept":
            return None
        app_id = platform.runtime.scenes.get((event.kind, event.scene))
        if app_id is None:
            return None
        try:
            version = platform.runtime.resolve(app_id, event.account_id)
        except e.AppError as exc:
            log.info("scan event not delivered", extra={"app": app_id, "error": exc.code})
            return exc.code
        if event.kind not in version.scenes:
            return None
        fields = {"scan_id": event.scan_id, "attempt": attempt}
        try:
            await self._call(platform, version, await self._app_event(platform, app_id, version, event))
        except SandboxError as exc:
            code = e.from_sandbox(exc, app_id).code
            platform.runtime.host.app_log(
                version.key, "warning", "scan event failed", code=code, reason=exc.message[:500], **fields
            )
            return code
        except Exception as exc:  # the platform failed (the archive, the database): the event is kept
            log.warning("scan event delivery failed", extra={"app": app_id, "error": repr(exc)})
            platform.runtime.host.app_log(
                version.key, "warning", "scan event failed", code="miniapp.failed", **fields
            )
            return "miniapp.failed"
        return None

    async def _app_event(
        self, platform: Platform, app_id: str, version: LiveVersion, event: ScanFacts
    ) -> AppScanEvent:
        # The scene's facts; the holder's id only if they use this app (a scan is not consent to be named,
        # messaged or charged by it).
        user_id = colour = None
        if event.account_id is not None and event.colour is not None and COLOUR_SCOPE in version.scopes:
            # the code's colour too, if they granted the scope: one statement, no call back from the app
            user_id, shown = await platform.caps.known_consenting(app_id, event.account_id, COLOUR_SCOPE)
            colour = event.colour if shown else None
        elif event.account_id is not None:
            user_id = await platform.caps.known(app_id, event.account_id)
        preloads = version.scan_preloads.get(event.kind)
        preloaded = await self._preload(platform, version, preloads, user_id, event) if preloads else {}
        return AppScanEvent(
            scene_kind=event.kind,
            scene_id=event.scene,
            terminal_id=event.terminal_id,
            user_id=user_id,
            data=ScanData(
                scan_id=event.scan_id,
                scanned_at=event.scanned_at,
                mode="online" if event.mode == "online" else "offline",
                credential_type=event.credential_type,
                amount_fen=event.amount_fen,
                unit=event.unit,
                issuer=event.issuer,
                settled_fen=event.settled_fen,
                # the app bound to the scene may give part of a settled offline ride back (c.PaymentsRefund); a
                # partner county's ride (naming no one here) was charged to no one-card: nothing to give back
                payment_id=f"ride_{event.scan_id}"
                if event.mode != "online" and event.settled_fen and event.account_id is not None
                else None,
                app_pass=_scanned(event.app_pass),
                health_color=colour,
                preloaded=preloaded,
                stop=event.stop,
                tap="off" if event.tap == "off" else "on",
                terminal_admitted=event.terminal_admitted,
                terminal_reason=event.terminal_reason,
                # a partner county's code: who holds it is not known here, only its keyed pseudonym in this app
                holder_ref=platform.caps.ids.holder_for(app_id, event.holder)
                if event.holder is not None and event.account_id is None
                else None,
            ),
        )

    @staticmethod
    async def _preload(
        platform: Platform,
        version: LiveVersion,
        preloads: dict[str, Any],
        user_id: str | None,
        event: ScanFacts,
    ) -> dict[str, c.RecordPage]:
        """The manifest's finds for this scene kind, at once, as the app's own calls (its collections, its
        indexes); one that fails is left out and the app's log says why (the handler can ask again)."""
        finds = c.preload_finds(preloads, user_id, event.scanned_at)
        if not finds:
            return {}
        call = CallInfo(app_id=version.app_id, version=version.version, call_id=0, user_id=user_id)
        pages = await asyncio.gather(
            *(platform.caps.db.handle(call, find) for find in finds.values()), return_exceptions=True
        )
        preloaded = {}
        for name, page in zip(finds, pages, strict=True):
            if isinstance(page, c.RecordPage):
                preloaded[name] = page
                continue
            if not isinstance(page, Exception):
                raise page  # cancelled
            code = page.code if isinstance(page, YimaError) else "miniapp.failed"
            platform.runtime.host.app_log(version.key, "warning", "scan preload failed", preload=name,
                                          code=code, scan_id=event.scan_id)  # fmt: skip
        return preloaded

    async def _deliver(
        self, platform: Platform, app_id: str, event: ScanFacts, prepared: Awaitable[object] | None
    ) -> MiniAppPart:
        try:
            version = platform.runtime.resolve(app_id, event.account_id)
        except e.AppError as exc:
            return MiniAppPart(app_id, missing=True, reason=exc.code)
        if event.kind not in version.scenes:
            return MiniAppPart(app_id, missing=True, reason="miniapp.scene_not_subscribed")
        if event.mode != "online":
            # uploaded offline scans reach the app through the outbox (deliver), never here; nothing waits
            return MiniAppPart(app_id)
        # what the platform reads for the event (the resident's id, consent, the preloads) is within the deadline
        task = asyncio.ensure_future(self._prepare_and_call(platform, app_id, version, event, prepared))
        done, _ = await asyncio.wait({task}, timeout=platform.config.scan_deadline_ms / 1000)
        if not done:
            # let the sandbox's own deadline end the call; the terminal gets its answer now
            self._background.add(task)
            task.add_done_callback(self._finished)
            return MiniAppPart(app_id, missing=True, reason="miniapp.timeout")
        try:
            value = task.result()
        except SandboxError as exc:
            return MiniAppPart(app_id, missing=True, reason=e.from_sandbox(exc, app_id).code)
        try:
            reply = scan_reply(value)
        except BadScanReply as exc:
            platform.runtime.host.app_log(version.key, "warning", "bad scan reply", detail=exc.message)
            return MiniAppPart(app_id, missing=True, reason=exc.code)
        return MiniAppPart(app_id, list(reply.lines), admit=reply.admit)

    async def _prepare_and_call(
        self,
        platform: Platform,
        app_id: str,
        version: LiveVersion,
        event: ScanFacts,
        prepared: Awaitable[object] | None,
    ) -> Any:
        early = await prepared if prepared is not None else None
        if isinstance(early, tuple) and early[:2] == (version.key, event.scan_id):
            app_event = early[2]  # read while the scan committed, for this very version
        else:
            app_event = await self._app_event(platform, app_id, version, event)
        return await self._call(platform, version, app_event)

    @staticmethod
    async def _call(platform: Platform, version: LiveVersion, app_event: AppScanEvent) -> Any:
        key = await platform.runtime.ensure_loaded(version)
        return await platform.runtime.host.scan(key, app_event)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.info("late or failed scan event", extra={"error": type(task.exception()).__name__})

    async def drain(self) -> None:
        """Wait for deliveries still running in the background (offline batches, late apps)."""
        while self._background:
            await asyncio.wait(set(self._background))

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
