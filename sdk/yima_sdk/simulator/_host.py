"""AsyncSimulator: one mini-app in child processes (the yima_sdk worker runtime over the sandbox bridge), served
against the simulated platform, with the host's rules: one call at a time per worker and up to `limits.workers` at
once, a deadline per call, capabilities checked against the manifest, `log` kept by the host, a crashed worker
replaced (`_worker_host.py`).
The calls it makes are built here as the gateway, a terminal and the job scheduler build them."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import msgspec

from yima_sdk._bridge import (
    JobEvent,
    LayerReport,
    Request,
    Response,
    ScanData,
    ScanEvent,
    ScannedPass,
)
from yima_sdk._stops import valid_stop
from yima_sdk.codes import CredentialError
from yima_sdk.contract import RecordPage, ScanReply, answer_headers, preload_finds, scan_reply
from yima_sdk.errors import YimaError, error_for_code, gateway_answer
from yima_sdk.manifest import Manifest, load_manifest
from yima_sdk.passes import open_pass
from yima_sdk.simulator._platform import SimJob, SimulatedPlatform, Switches, holder_ref
from yima_sdk.simulator._responses import SimResponse, problem
from yima_sdk.simulator._worker_host import AppFailure, WorkerHost

__all__ = ["AppFailure", "AsyncSimulator", "JobRun", "SimResponse"]

STAFF_REQUIRED = (
    403,
    "miniapp.staff_required",
    "This route is for the app's staff holding a role you do not hold",
)
"""The gateway's answer to a staff route called without its role (server/platform/staff/errors.py)."""


class JobRun(msgspec.Struct, frozen=True, kw_only=True):
    """One run of a job by `advance`: `ok`, or the failure's `code` and whether it runs again (`retry_in_s`)."""

    name: str
    job_id: str
    attempt: int
    at: float
    """The simulator's time of the run (Unix seconds)."""
    ok: bool
    code: str = ""
    retry_in_s: float | None = None


class AsyncSimulator:
    """Run the app in `folder` like production does, against a SimulatedPlatform. Use from one event loop."""

    def __init__(
        self,
        folder: str | Path,
        *,
        switches: Switches | None = None,
        platform: SimulatedPlatform | None = None,
        python: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = Path(folder).resolve()
        self.manifest: Manifest = load_manifest(self.folder)
        self._skew = 0.0
        self.platform = platform or SimulatedPlatform(
            self.manifest, switches=switches, clock=lambda: clock() + self._skew
        )
        if platform is not None:
            given = platform.clock
            platform.clock = lambda: given() + self._skew
        self.switches = self.platform.switches
        self.python = python or sys.executable
        self.logs: list[dict[str, Any]] = []
        self._host = WorkerHost(self.folder, self.manifest, self.platform, self.python, self.logs)
        self._advancing = asyncio.Lock()
        self._scan_ids = 0
        self._delivered: dict[str, tuple[int | None, str | None]] = {}
        """What each scan delivered so far settled (settled_fen, payment_id), by scan id: delivered again as is."""

    @property
    def layers(self) -> list[LayerReport]:
        """The isolation layers the worker reported (each in force or not)."""
        return self._host.layers

    @property
    def startup_ms(self) -> float:
        """How long the worker took to start, as it reported."""
        return self._host.startup_ms

    @property
    def worker_pid(self) -> int | None:
        """The running worker's process id, None while none runs."""
        worker = self._host.worker
        return None if worker is None else worker.proc.pid

    @property
    def missing_layers(self) -> list[str]:
        """The production isolation layers this simulated worker does not have."""
        return [layer.name for layer in self.layers if not layer.in_force]

    def user_id(self, user: str) -> str:
        return self.platform.user_id(user)

    # ---- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn the worker and wait for Ready; AppFailure(`miniapp.load_failed`) if the app cannot load."""
        await self._host.start()

    async def close(self) -> None:
        """Kill and reap the worker."""
        await self._host.close()

    async def __aenter__(self) -> AsyncSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- calls ----------------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        user: str | None = "alice",
        json: Any = None,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> SimResponse:
        """Call a route as fixture resident `user` (None: anonymous). App failures come back as the gateway
        answers them: a problem+json with the stable code and a 4xx/5xx status."""
        all_headers = {k.lower(): v for k, v in (headers or {}).items()}
        if json is not None:
            body = msgspec.json.encode(json)
            all_headers.setdefault("content-type", "application/json")
        request = Request(
            method=method.upper(),
            path=path,
            query=query or {},
            headers=all_headers,
            body=body,
            user_id=None if user is None else self.user_id(user),
            received_at=dt.datetime.fromtimestamp(self.platform.clock(), dt.UTC),
        )
        self.platform.use(request.user_id)
        role = self.platform.staff_route_refusal(request.method, path, request.user_id)
        if role is not None:  # the gateway refuses before the app runs
            status, code, title = STAFF_REQUIRED
            return problem(status, code, title=title, extra={"role": role})
        try:
            response = await self._host.invoke(request)
        except AppFailure as exc:
            # the gateway's status and code (yima_sdk.errors.gateway_answer); the detail stays for the developer
            status, code, title = gateway_answer(exc.code)
            return problem(status, code, exc.message, title=title, app_code=exc.code)
        assert isinstance(response, Response)
        # the gateway's rule for what an answer carries (JSON, CSV or bytes; nosniff; private caching)
        return SimResponse(response.status, answer_headers(response.headers), response.body)

    @property
    def last_scan_id(self) -> str | None:
        """The id of the scan delivered last (None before any): `scan(..., scan_id=)` delivers it again."""
        return f"sim-scan-{self._scan_ids}" if self._scan_ids else None

    async def scan(self, scene_kind: str, **kwargs: Any) -> list[str]:
        """Fire a scan event (see `scan_reply`); returns the display lines the app added."""
        return list((await self.scan_reply(scene_kind, **kwargs)).lines)

    async def scan_reply(
        self,
        scene_kind: str,
        *,
        user: str | None = "alice",
        scene_id: str = "scene-1",
        terminal_id: str = "terminal-1",
        mode: Literal["online", "offline"] = "online",
        credential_type: str = "ankang_code",
        amount_fen: int | None = None,
        unit: str | None = None,
        issuer: int | None = 341822,
        settled_fen: int | None = None,
        app_pass: str | None = None,
        scanned_at: dt.datetime | None = None,
        stop: str | None = None,
        tap: Literal["on", "off"] = "on",
        scan_id: str | None = None,
        holder: str = "partner-rider",
        terminal_admitted: bool | None = None,
        terminal_reason: str | None = None,
    ) -> ScanReply:
        """Deliver a scan event as a terminal at a `scene_kind` scene would (with a fresh scan id and the
        simulator's time) of fixture resident `user`'s code; returns the app's reply: its display lines and its
        `admit` verdict (False: the terminal keeps the rider or visitor out; None: it said nothing). As in
        production the event names the resident (`user_id`) only if they have called the app before: a scan
        does not introduce a resident to an app. The app's errors are raised as the matching yima_sdk error
        (e.g. ConsentDenied), an answer outside the scan reply contract as BadScanReply (production shows the
        scan without the app's part then). `issuer`: the code's issuer, Guangde (341822) unless a partner county's
        code is scanned (pass `user=None` then: a partner county's resident is not known to this platform).
        An offline ride code with `amount_fen` is settled as production settles it (`settled_fen`: re-priced by
        the `fares` table the app published in force at the scan, on the line of a `line:<id>` unit; else the
        terminal's amount), unless `settled_fen` is given; the rider's balance pays it, and the event's
        `payment_id` (`ride_<id>`) is what the app may refund part of (`payments.refund`).
        `scanned_at`: when the terminal scanned (an offline scan uploaded later), the simulator's time unless given.
        `app_pass`: the payload of a pass (a ticket) the terminal scanned instead of a code: checked as production
        checks it (CredentialError with its reason when refused: production rejects the scan, and the app never
        sees it), then in `event.data.app_pass`, with its holder as `user_id` (`user` is not used).
        `stop`, `tap`: where the terminal was and which tap it was (`event.data.stop`, `event.data.tap`), checked
        as production checks them (ValueError for a malformed stop: production answers 400 `scan.stop_invalid`);
        a tap-off charges nothing (`amount_fen` must be None or 0 with `tap="off"`).
        `scan_id`: an id this simulator gave an earlier scan (`sim-scan-<n>`), to deliver that scan again, as
        production delivers an uploaded scan at least once (at once too: two deliverers after a lease ran out):
        what its first delivery settled is not settled again, its `settled_fen` and `payment_id` come back.
        `holder`: who holds a partner county's code (`user=None`, a partner `issuer`), any name: the event's
        `holder_ref` is that holder's pseudonym in this app, the same for the same name (one ride code).
        `terminal_admitted`, `terminal_reason`: an offline gate's own verdict (it decided the scan by its synced
        lists, `Terminal.admit`), as its upload carries it (`mode="offline"` only: ValueError otherwise)."""
        if terminal_admitted is not None and mode != "offline":
            raise ValueError("only an offline record carries a gate's verdict")
        if stop is not None and not valid_stop(stop):
            raise ValueError(f"stop {stop!r}: production refuses it with 400 scan.stop_invalid")
        if tap not in ("on", "off"):
            raise ValueError(f"tap {tap!r}: production refuses it with 400 request.invalid")
        if tap == "off" and amount_fen:
            raise ValueError(
                "a tap-off charges nothing: production refuses its record as scan.amount_invalid"
            )
        again = self._delivered.get(scan_id) if scan_id is not None else None
        if scan_id is not None and again is None:
            raise ValueError(f"no earlier scan {scan_id!r} to deliver again")
        if scan_id is None:
            self._scan_ids += 1
            scan_id = f"sim-scan-{self._scan_ids}"
        if scanned_at is None:
            scanned_at = dt.datetime.fromtimestamp(self.platform.clock(), dt.UTC)
        payment_id = None
        if again is not None:
            settled_fen, payment_id = again
        elif settled_fen is None and mode == "offline" and credential_type == "ride_code" and amount_fen:
            settled_fen = self.platform.settle_ride(unit, scanned_at, amount_fen)
        scanned: ScannedPass | None = None
        user_id = None if user is None or user not in self.platform.used else self.user_id(user)
        if again is None and mode == "offline" and settled_fen and user is not None:
            # settlement charged the rider's card: a payment this app may refund part of, as in production
            payment_id = self.platform.settled_ride(user, settled_fen)
        self._delivered[scan_id] = (settled_fen, payment_id)
        if app_pass is not None:
            platform = self.platform
            verdict = platform.credentials.verify(
                app_pass, platform._user_of_app, lambda name: False, platform._share_consented
            )
            if not verdict.valid or verdict.kind != "app_pass":
                raise CredentialError(verdict.reason or "credential.malformed")
            claims = open_pass(app_pass)[0]
            scanned = ScannedPass(
                id=f"pass_{claims.p}", app=claims.a, kind=claims.k, data=claims.d, valid_until=claims.exp
            )
            user_id, credential_type = verdict.user_id, "app_pass"
        colour = None  # as production: the code's colour only to an app the resident granted the scope
        if user_id is not None and app_pass is None and credential_type == "ankang_code" and user is not None:
            colour = self.platform.users[user].health_color if self.platform._shows_colour(user) else None
        preloaded = self._preload(scene_kind, user_id, scanned_at, scan_id)
        # as production: a partner county's code (not ours, naming no one here) has a holder pseudonym
        partner = (
            user is None and app_pass is None and issuer not in (None, 341822)
            and credential_type in ("ride_code", "ankang_code")
        )  # fmt: skip
        event = ScanEvent(
            scene_kind=scene_kind,
            scene_id=scene_id,
            terminal_id=terminal_id,
            user_id=user_id,
            data=ScanData(
                scan_id=scan_id,
                scanned_at=scanned_at,
                mode=mode,
                credential_type=credential_type,
                amount_fen=amount_fen,
                unit=unit,
                issuer=issuer,
                settled_fen=settled_fen,
                app_pass=scanned,
                health_color=colour,
                payment_id=payment_id,
                preloaded=preloaded,
                stop=stop,
                tap=tap,
                terminal_admitted=terminal_admitted,
                terminal_reason=terminal_reason if terminal_admitted is not None else None,
                holder_ref=holder_ref(self.manifest.id, issuer, holder)
                if partner and issuer is not None
                else None,
            ),
        )
        try:
            value = await self._host.invoke(event)
        except AppFailure as exc:
            raise error_for_code(exc.code, exc.message) from None
        return scan_reply(value)

    def _preload(
        self, scene_kind: str, user_id: str | None, scanned_at: dt.datetime, scan_id: str
    ) -> dict[str, RecordPage]:
        """The manifest's `[scan_preload]` finds for this scan, as production runs them before the event: one
        that fails is left out, and the app's log says why."""
        preloads = self.manifest.scan_preload.get(scene_kind, {})
        preloaded = {}
        for name, find in preload_finds(preloads, user_id, scanned_at).items():
            try:
                preloaded[name] = self.platform.db.handle(find)
            except YimaError as exc:
                self.logs.append({"level": "warning", "event": "scan preload failed", "source": "platform",
                                  "preload": name, "code": exc.code, "scan_id": scan_id})  # fmt: skip
        return preloaded

    async def advance(
        self, *, days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0
    ) -> list[JobRun]:
        """Move the simulator's clock forward, running every job that falls due on the way, in time order, as
        production would: each at its due time, a failure again after its backoff (within the window), a
        schedule at each of its firings. Returns the runs; failures are also in `logs`, as in the app's log."""
        async with self._advancing:  # one advance at a time: a job is never taken by two
            target = self.platform.clock() + ((days * 24 + hours) * 60 + minutes) * 60 + seconds
            runs: list[JobRun] = []
            while (job := self.platform.next_job(target)) is not None:
                self._skew += max(0.0, job.run_at - self.platform.clock())
                runs.append(await self._run_job(job))
            self._skew += max(0.0, target - self.platform.clock())
            return runs

    async def _run_job(self, job: SimJob) -> JobRun:
        job.attempt += 1
        now = self.platform.clock()
        event = JobEvent(
            name=job.name,
            job_id=job.job_id,
            data=job.data,
            attempt=job.attempt,
            scheduled_at=dt.datetime.fromtimestamp(job.due, dt.UTC),
        )
        try:
            await self._host.invoke(event)
        except AppFailure as exc:
            retry = self.platform.job_ran(job, ok=False)
            record = {"level": "warning", "event": "job failed", "source": "platform", "job": job.name}
            self.logs.append(
                {
                    **record,
                    "job_id": event.job_id,
                    "attempt": job.attempt,
                    "code": exc.code,
                    "retry_in_s": retry,
                }
            )
            return JobRun(
                name=job.name, job_id=event.job_id, attempt=event.attempt, at=now, ok=False, code=exc.code,
                retry_in_s=retry,
            )  # fmt: skip
        self.platform.job_ran(job, ok=True)
        return JobRun(name=job.name, job_id=event.job_id, attempt=event.attempt, at=now, ok=True)
