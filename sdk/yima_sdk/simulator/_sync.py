"""Simulator: the synchronous face of AsyncSimulator for tests and scripts; its event loop runs in a thread,
so plain (non-async) pytest tests can call routes and fire scans."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from yima_sdk._bridge import LayerReport
from yima_sdk.contract import ScanReply
from yima_sdk.simulator._host import AsyncSimulator, JobRun, SimResponse
from yima_sdk.simulator._platform import SimulatedPlatform, Switches

__all__ = ["Simulator"]

T = TypeVar("T")


class Simulator:
    """Run the app in `folder` in a simulated worker; call it from ordinary code.

    with Simulator("my-app") as app:
        assert app.get("/hello", user="alice").status == 200
        app.switches.consent_denied = True
    """

    def __init__(self, folder: str | Path, *, switches: Switches | None = None, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="yima-sdk-simulator", daemon=True)
        self._thread.start()
        self._async = self._run_sync(_make(folder, switches, options))

    def _run_sync(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    # ---- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> Simulator:
        self._run_sync(self._async.start())
        return self

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run_sync(self._async.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- what the developer looks at ------------------------------------------------------------------

    @property
    def platform(self) -> SimulatedPlatform:
        return self._async.platform

    @property
    def switches(self) -> Switches:
        """consent_denied, quota_exceeded, payment_failure, refund_failure, payment_confirmation (see Switches)."""
        return self._async.switches

    @property
    def layers(self) -> list[LayerReport]:
        return self._async.layers

    @property
    def missing_layers(self) -> list[str]:
        return self._async.missing_layers

    @property
    def logs(self) -> list[dict[str, Any]]:
        return self._async.logs

    @property
    def last_scan_id(self) -> str | None:
        """The id of the scan delivered last: `scan(..., scan_id=)` delivers it again."""
        return self._async.last_scan_id

    @property
    def storage(self) -> dict[str, Any]:
        """The app's stored values by key (a copy)."""
        return {key: doc.value for key, doc in self.platform.space.docs.items()}

    @property
    def counters(self) -> dict[str, int]:
        return dict(self.platform.space.counters)

    @property
    def payments(self) -> list[dict[str, Any]]:
        return [dict(p) for p in self.platform.payments.values()]

    def advance(
        self, *, days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0
    ) -> list[JobRun]:
        """Move the simulator's clock forward, running the jobs that fall due on the way (see AsyncSimulator)."""
        return self._run_sync(self._async.advance(days=days, hours=hours, minutes=minutes, seconds=seconds))

    def schedule_job(self, name: str, data: dict[str, Any] | None = None, *, key: str | None = None) -> str:
        """A one-shot job of the app due now (as `yima dev` schedules a local app's `seed` job); `advance()`
        runs it."""
        return self.platform.schedule_job(name, data, key=key)

    @property
    def now(self) -> float:
        """The simulator's clock (Unix seconds): the real time plus what `advance` added."""
        return self.platform.clock()

    @property
    def jobs(self) -> list[dict[str, Any]]:
        """Schedules and one-shot jobs: id, name, due, run_at, data, schedule, attempt, status."""
        return [dict(vars(job)) for job in self.platform.jobs.values()]

    def inbox(self, user: str) -> list[dict[str, Any]]:
        """Messages the app sent to fixture resident `user`."""
        target = self.user_id(user)
        return [m for m in self.platform.inbox if m["user_id"] == target]

    def user_id(self, user: str) -> str:
        """The app-scoped id the app sees for fixture resident `user`."""
        return self.platform.user_id(user)

    def ankang_code(self, user: str) -> str:
        """A simulated Ankang code payload of `user`, for `ctx.credentials.verify`."""
        return self.platform.ankang_code(user)

    def confirm_payment(self, payment_id: str, *, accept: bool = True) -> dict[str, Any]:
        return self.platform.confirm_payment(payment_id, accept=accept)

    def grant_staff(self, user: str, role: str, unit: str | None = None) -> None:
        """Fixture resident `user` gets staff `role` at `unit` (`kind:id`; None: app-wide)."""
        self.platform.grant_staff(user, role, unit)

    def revoke_staff(self, user: str, role: str, unit: str | None = None) -> None:
        self.platform.revoke_staff(user, role, unit)

    def pass_from(
        self, issuer: str, user: str, kind: str, data: dict[str, Any], *, valid_s: int = 3600
    ) -> str:
        """A pass app `issuer` shares with this app, held by `user` (see SimulatedPlatform.pass_from)."""
        return self.platform.pass_from(issuer, user, kind, data, valid_s=valid_s)

    def set_share_consent(self, user: str, issuer: str, granted: bool) -> None:
        """`user` grants or refuses app `issuer` sharing its passes with this app."""
        self.platform.set_share_consent(user, issuer, granted)

    @property
    def worker_pid(self) -> int | None:
        return self._async.worker_pid

    # ---- calls ----------------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> SimResponse:
        """See AsyncSimulator.request: `user=`, `json=`, `body=`, `headers=`, `query=`."""
        return self._run_sync(self._async.request(method, path, **kwargs))

    def get(self, path: str, **kwargs: Any) -> SimResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> SimResponse:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> SimResponse:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> SimResponse:
        return self.request("DELETE", path, **kwargs)

    def scan(self, scene_kind: str, **kwargs: Any) -> list[str]:
        """Fire a scan event (`user=`, `scene_id=`, `terminal_id=`, `mode=`, `credential_type=`,
        `amount_fen=`, `unit=`, `stop=`, `tap=`...); returns the app's display lines; the app's errors (and BadScanReply) are raised."""
        return self._run_sync(self._async.scan(scene_kind, **kwargs))

    def scan_reply(self, scene_kind: str, **kwargs: Any) -> ScanReply:
        """As `scan`, the app's whole reply: `lines` and `admit` (False keeps the rider or visitor out)."""
        return self._run_sync(self._async.scan_reply(scene_kind, **kwargs))


async def _make(folder: str | Path, switches: Switches | None, options: dict[str, Any]) -> AsyncSimulator:
    # built on the simulator's own loop: its asyncio primitives belong there
    return AsyncSimulator(folder, switches=switches, **options)
