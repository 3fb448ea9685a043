"""Callers that go away: a call whose caller hangs up or is cancelled while it waits leaves the queue and never
runs; one whose caller is cancelled while it runs finishes, and its worker serves the next caller; a caller
cancelled at the very moment a worker is handed to it passes the worker on. The pool never ends a worker short."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sandbox_helpers import get, running_host

from sandbox import CallerGone, CallInfo, InMemoryCapabilityProvider, SandboxHost, SandboxSettings

# on both loops (tests/event_loops.py): the host's supervision of its workers
pytestmark = pytest.mark.both_loops

APP = "three_workers"
WORKERS = 3


class Gate(InMemoryCapabilityProvider):
    """`notify.wait_gate` blocks until the test opens the gate: a busy worker without sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = asyncio.Event()
        self.inside = 0
        self._changed = asyncio.Condition()

    async def handle(
        self, call: CallInfo, capability: str, operation: str, args: list[Any], kwargs: dict[str, Any]
    ) -> Any:
        if (capability, operation) == ("notify", "wait_gate"):
            async with self._changed:
                self.inside += 1
                self._changed.notify_all()
            await self.opened.wait()
            return True
        return await super().handle(call, capability, operation, args, kwargs)

    async def until_inside(self, calls: int) -> None:
        """Until `calls` calls in all have reached the gate (each on a worker of its own, at once)."""
        async with asyncio.timeout(30), self._changed:
            await self._changed.wait_for(lambda: self.inside >= calls)


def ran(host: SandboxHost, key: str) -> list[str]:
    """Tags of the `/note` calls the app ran, from its log."""
    return [r["tag"] for r in host.logs(key) if r["source"] == "app" and r["event"] == "ran"]


async def every_worker_serves_at_once(host: SandboxHost, key: str, gate: Gate) -> None:
    """All the app's workers take a call each at the same moment (calls wait at most a second for a worker, so a
    worker the pool lost would show as `busy`), and afterwards every one of them is idle again."""
    gate.opened = asyncio.Event()
    already = gate.inside
    calls = [asyncio.ensure_future(host.call(key, get("/gate"))) for _ in range(WORKERS)]
    inside = asyncio.ensure_future(gate.until_inside(already + WORKERS))
    await asyncio.wait([inside, *calls], return_when=asyncio.FIRST_COMPLETED)
    gate.opened.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert [getattr(r, "status", r) for r in results] == [200] * WORKERS
    assert inside.done() and inside.exception() is None, "not every worker took a call at once"
    metrics = host.metrics()[key]
    assert (metrics["workers"], metrics["idle"]) == (WORKERS, WORKERS), metrics


async def test_a_caller_cancelled_as_a_worker_is_handed_to_it_passes_the_worker_on() -> None:
    gate = Gate()
    async with running_host(APP, settings=SandboxSettings(queue_wait_ms=1000), provider=gate) as (host, keys):
        key = keys[APP]
        pids = host.worker_pids(key)
        held = [asyncio.ensure_future(host.call(key, get("/gate"))) for _ in range(WORKERS - 1)]
        await gate.until_inside(WORKERS - 1)  # one worker left free
        for round_ in range(30):
            waiting = asyncio.ensure_future(host.call(key, get("/note", tag=f"cancelled {round_}")))
            # This call takes the free worker; `waiting` starts meanwhile and queues for it. When this call ends,
            # the pool hands the worker to `waiting` and this task resumes first: it cancels `waiting` before
            # `waiting` could run, with the worker already given to it.
            await host.call(key, get("/note", tag=f"served {round_}"))
            assert host.metrics()[key]["queued"] == 0  # handed over
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        gate.opened.set()
        assert [r.status for r in await asyncio.gather(*held)] == [200] * (WORKERS - 1)
        assert ran(host, key) == [f"served {n}" for n in range(30)]  # no cancelled call ran
        await every_worker_serves_at_once(host, key, gate)
        assert host.worker_pids(key) == pids  # the same workers: none lost, none replaced
        assert host.metrics()[key]["left_the_queue"] == 30


async def test_a_call_whose_caller_is_cancelled_runs_to_its_end_then_frees_its_worker() -> None:
    gate = Gate()
    async with running_host(APP, settings=SandboxSettings(queue_wait_ms=1000), provider=gate) as (host, keys):
        key = keys[APP]
        pids = host.worker_pids(key)
        running = asyncio.ensure_future(host.call(key, get("/gate")))
        await gate.until_inside(1)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        assert host.metrics()[key]["idle"] == WORKERS - 1  # the app still works on the call
        gate.opened.set()
        async with asyncio.timeout(30):  # the call ends in the app: its worker comes back
            while host.metrics()[key]["idle"] < WORKERS:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        logs = host.logs(key)
        assert [r["event"] for r in logs if r["source"] == "app"] == ["passed the gate"]  # to its end
        await every_worker_serves_at_once(host, key, gate)
        assert host.worker_pids(key) == pids  # not killed for answering a call it no longer had
        metrics = host.metrics()[key]
        assert metrics["finished_without_caller"] == 1 and "worker_losses" not in metrics, metrics


async def test_a_call_whose_caller_hangs_up_while_it_waits_leaves_the_queue_and_never_runs() -> None:
    gate = Gate()
    async with running_host(APP, provider=gate) as (host, keys):
        key = keys[APP]
        held = [asyncio.ensure_future(host.call(key, get("/gate"))) for _ in range(WORKERS)]
        await gate.until_inside(WORKERS)
        hung_up = asyncio.Event()
        doomed = [
            asyncio.ensure_future(host.call(key, get("/note", tag=f"doomed {n}"), hung_up=hung_up.wait))
            for n in range(5)
        ]
        stays = asyncio.ensure_future(host.call(key, get("/note", tag="stays"), hung_up=asyncio.Event().wait))
        async with asyncio.timeout(30):
            while host.metrics()[key]["queued"] < 6:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        hung_up.set()
        async with asyncio.timeout(30):
            for call in doomed:
                with pytest.raises(CallerGone):
                    await call
        assert host.metrics()[key]["queued"] == 1  # their places are free at once
        later = asyncio.ensure_future(host.call(key, get("/note", tag="later")))
        gate.opened.set()
        assert (await stays).status == 200 and (await later).status == 200
        assert [r.status for r in await asyncio.gather(*held)] == [200] * WORKERS
        assert sorted(ran(host, key)) == ["later", "stays"]  # no call of a caller who hung up ran
        assert host.metrics()[key]["left_the_queue"] == 5
