"""The supervisor's restart pause never leaves a node without a live worker (issue 17: a node sat 30 s with none).

Fake processes and an injected clock drive `Supervisor.step`, the round its loop runs every 0.2 s, so the test
covers the decision itself without waiting out real pauses.
"""

from __future__ import annotations

import logging

import pytest

from server.ops.workers import RESTART_PAUSE_S, Supervisor, _Slot
from server.settings import load_settings


class FakeProcess:
    next_pid = 1000

    def __init__(self) -> None:
        FakeProcess.next_pid += 1
        self.pid = FakeProcess.next_pid
        self.exitcode: int | None = None

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


class FakeSupervisor(Supervisor):
    def __init__(self, workers: int) -> None:
        self.now = 0.0
        settings = load_settings({}, mode="test", workers=workers, redis_url="redis://127.0.0.1:1/0")
        super().__init__(settings, clock=lambda: self.now)

    def _new_process(self, slot: _Slot) -> FakeProcess:  # type: ignore[override]
        return FakeProcess()

    def crash(self, index: int) -> None:
        process = self.slots[index].process
        assert process is not None
        process.exitcode = 1  # type: ignore[misc]

    def serving(self) -> int:
        return sum(1 for s in self.slots if s.process is not None)


def test_repeated_crashes_never_leave_the_node_without_a_worker(caplog: pytest.LogCaptureFixture) -> None:
    sup = FakeSupervisor(2)
    for slot in sup.slots:
        sup._start(slot)
    caplog.set_level(logging.INFO, logger="yima.workers")
    # Both workers die again and again soon after starting (a poisoned request, a crashing extension...).
    for _ in range(len(RESTART_PAUSE_S) + 2):
        for index in range(2):
            if sup.slots[index].process is not None:
                sup.now += 1.0
                sup.crash(index)
                sup.step()
                assert sup.serving() >= 1, "restart pauses left the node without a worker"
    # The others' pauses keep running; the log says why they wait.
    assert max(s.failures for s in sup.slots) >= len(RESTART_PAUSE_S) - 1
    assert "no worker serving; restarting one now despite its pause" in caplog.text
    died = [r for r in caplog.records if r.getMessage() == "worker died; restarting"]
    assert all(hasattr(r, "crashes_in_a_row") and hasattr(r, "workers_serving") for r in died)


def test_a_worker_waits_out_its_pause_while_another_serves() -> None:
    sup = FakeSupervisor(2)
    for slot in sup.slots:
        sup._start(slot)
    sup.now = 1.0
    sup.crash(0)
    sup.step()
    assert sup.slots[0].process is None and sup.serving() == 1  # paused: the other worker serves meanwhile
    sup.now = 1.0 + RESTART_PAUSE_S[1]
    sup.step()
    assert sup.serving() == 2
