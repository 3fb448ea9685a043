"""The capability gate of one app version: every request a worker makes passes here before any provider.

It refuses requests outside their call and past the in-flight bounds (per call, per app version), serves
`log` itself within the app's LogBudget, and lets the rest through to the CapabilityProvider at most
`capability_concurrency` at a time for the whole host (the slots it is given).
"""

from __future__ import annotations

import asyncio
import collections

from yima_sdk._bridge import CapabilityReply, CapabilityRequest
from yima_sdk.errors import CapabilityDenied, QuotaExceeded, YimaError
from yima_sdk.manifest import Manifest

from sandbox._logs import AppLog, LogBudget
from sandbox._process import WorkerProcess
from sandbox.capabilities import CallInfo, CapabilityProvider
from sandbox.settings import SandboxSettings

__all__ = ["CapabilityGate"]

_LOG_LEVELS = {"debug", "info", "warning", "error"}


class CapabilityGate:
    """Checks, bounds and serves the capability requests of one app version's workers."""

    def __init__(
        self,
        manifest: Manifest,
        settings: SandboxSettings,
        provider: CapabilityProvider,
        slots: asyncio.Semaphore,
        log: AppLog,
        log_budget: LogBudget,
        counters: collections.Counter[str],
        tasks: set[asyncio.Task[None]],
    ) -> None:
        self.manifest = manifest
        self.settings = settings
        self.provider = provider
        self.slots = slots
        """The host's provider slots, shared by every app (the provider's share of the database pool)."""
        self.log = log
        self.log_budget = log_budget
        self.counters = counters
        self.tasks = tasks
        """The pool's tasks: closing the pool cancels requests still being served."""
        self.inflight = 0
        """Requests of all this app version's workers, in flight or waiting for a slot."""

    def on_request(self, worker: WorkerProcess, request: CapabilityRequest) -> None:
        """A worker asked for a capability: refuse it at once, log it, or serve it in a task."""
        if request.call_id != worker.current_call:
            worker.reply(
                CapabilityReply(
                    id=request.id,
                    ok=False,
                    code=CapabilityDenied.code,
                    message="capability requested outside the call it belongs to",
                )
            )
            return
        if request.capability == "log":  # served here at once: bounded by rate and size, not concurrency
            self._log(worker, request)
            return
        if worker.inflight >= self.settings.max_inflight_capabilities:
            self._refuse(worker, request, "too many capability requests in flight for this call")
            return
        if self.inflight >= self.settings.max_app_inflight_capabilities:
            self._refuse(worker, request, "too many capability requests in flight for this app")
            return
        worker.inflight += 1
        self.inflight += 1
        task = asyncio.get_running_loop().create_task(self._serve(worker, request))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _refuse(self, worker: WorkerProcess, request: CapabilityRequest, why: str) -> None:
        self.counters["capability_refused_inflight"] += 1
        worker.reply(CapabilityReply(id=request.id, ok=False, code=QuotaExceeded.code, message=why))

    def _log(self, worker: WorkerProcess, request: CapabilityRequest) -> None:
        self.counters["capability.log"] += 1
        if "log" not in self.manifest.capabilities:
            self.counters["capability_denied"] += 1
            message = "capability 'log' is not declared in miniapp.toml"
            worker.reply(
                CapabilityReply(id=request.id, ok=False, code=CapabilityDenied.code, message=message)
            )
            return
        worker.log_records += 1
        # the app is not told: a log line that is dropped must not change what the app does
        if worker.log_records > self.settings.log_records_per_call or not self.log_budget.allow():
            self.counters["log_dropped"] += 1
        else:
            level = request.operation if request.operation in _LOG_LEVELS else "info"
            event, fields = self.log_budget.fields(
                str(request.args[0]) if request.args else "", request.kwargs
            )
            self.log.add(level, event, "app", {**fields, "call_id": request.call_id})
        worker.reply(CapabilityReply(id=request.id, ok=True, value=None))

    async def _serve(self, worker: WorkerProcess, request: CapabilityRequest) -> None:
        self.counters[f"capability.{request.capability}"] += 1
        try:
            if request.capability not in self.manifest.capabilities:
                raise CapabilityDenied(f"capability {request.capability!r} is not declared in miniapp.toml")
            call = CallInfo(
                app_id=self.manifest.id,
                version=self.manifest.version,
                call_id=request.call_id,
                user_id=worker.current_user,
            )
            async with self.slots:
                if request.call_id != worker.current_call:
                    raise CapabilityDenied("capability requested outside the call it belongs to")
                value = await self.provider.handle(
                    call, request.capability, request.operation, request.args, request.kwargs
                )
            reply = CapabilityReply(id=request.id, ok=True, value=value)
        except YimaError as exc:
            if isinstance(exc, CapabilityDenied):
                self.counters["capability_denied"] += 1
            reply = CapabilityReply(id=request.id, ok=False, code=exc.code, message=exc.message)
        except Exception as exc:  # a provider bug must not reach the app in detail, nor stop the host
            self.log.write(
                "error",
                "capability provider failed",
                capability=request.capability,
                operation=request.operation,
                error=type(exc).__name__,
            )
            reply = CapabilityReply(
                id=request.id,
                ok=False,
                code="capability.failed",
                message=f"{request.capability}.{request.operation} failed; try again later",
            )
        finally:
            worker.inflight -= 1
            self.inflight -= 1
        if request.call_id == worker.current_call:
            worker.reply(reply)
