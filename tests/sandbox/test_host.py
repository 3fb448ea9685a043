"""The host's supervision and the app model as a caller sees them: routing, capabilities, queue bounds,
deadlines, crashes, recycling, metrics, logs, and no orphans after close."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sandbox_helpers import APPS, alive, exists, get, live_workers, no_workers_left, running_host
from yima_sdk import Request, ScanEvent
from yima_sdk.manifest import Limits, load_manifest

from sandbox import (
    AppBusy,
    CallInfo,
    CpuExceeded,
    InMemoryCapabilityProvider,
    MiniAppError,
    SandboxError,
    SandboxSettings,
    UnknownApp,
    WorkerCrashed,
    restart_delay,
)
from sandbox.settings import effective_limits

# on both loops (tests/event_loops.py): the host's supervision of its workers
pytestmark = pytest.mark.both_loops


def body(response: Any) -> Any:
    return msgspec.json.decode(response.body)


class GatedProvider(InMemoryCapabilityProvider):
    """`notify.wait_gate` blocks until the test opens the gate: a busy worker without sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self.waiting = 0

    async def handle(
        self, call: CallInfo, capability: str, operation: str, args: list[Any], kwargs: dict[str, Any]
    ) -> Any:
        if (capability, operation) == ("notify", "wait_gate"):
            self.waiting += 1
            self.entered.set()
            await self.gate.wait()
            return True
        return await super().handle(call, capability, operation, args, kwargs)


async def test_routes_path_params_scans_and_http_answers() -> None:
    async with running_host("echo") as (host, keys):
        key = keys["echo"]
        assert body(await host.call(key, get("/books/42"))) == {"id": "42"}
        ping = await host.call(key, Request(method="GET", path="/ping", user_id="app-user-7"))
        assert body(ping) == {"pong": True, "user": "app-user-7"}
        assert (await host.call(key, get("/nowhere"))).status == 404
        assert (await host.call(key, Request(method="DELETE", path="/ping"))).status == 405
        assert await host.scan(key, ScanEvent(scene_kind="clinic", scene_id="c-1")) == {
            "queue_number": 7,
            "scene": "c-1",
        }
        with pytest.raises(MiniAppError) as caught:
            await host.scan(key, ScanEvent(scene_kind="bus"))
        assert caught.value.code == "route.not_found"
        with pytest.raises(UnknownApp):
            await host.call("no.such.app@1.0.0", get("/ping"))


async def test_capabilities_declared_served_undeclared_denied_and_catchable() -> None:
    provider = InMemoryCapabilityProvider()
    async with running_host("echo", provider=provider) as (host, keys):
        key = keys["echo"]
        stored = await host.call(key, Request(method="POST", path="/store/shelf", body=b'{"n": 3}'))
        assert body(stored) == {"stored": {"n": 3}}
        assert provider.storage["test.yima.echo"] == {"shelf": {"n": 3}}
        # five storage requests in flight at once, then a log line
        assert body(await host.call(key, get("/parallel"))) == {"values": [None] * 5}
        # payments is not in the manifest: the app can catch CapabilityDenied...
        assert body(await host.call(key, get("/pay"))) == {"denied": "capability.denied"}
        # ...and when it does not, the caller sees the same stable code
        with pytest.raises(MiniAppError) as caught:
            await host.call(key, get("/pay-uncaught"))
        assert caught.value.code == "capability.denied"
        assert "not declared" in caught.value.message
        logs = host.logs(key)
        assert any(r["source"] == "app" and r["event"] == "parallel done" and r["count"] == 5 for r in logs)
        metrics = host.metrics()[key]
        assert metrics["capability_denied"] == 2
        assert metrics["ok"] == 3 and metrics["app_errors"] == 1


async def test_full_queue_answers_busy_at_once() -> None:
    provider = GatedProvider()
    settings = SandboxSettings(queue_limit=2)
    async with running_host("lifecycle", settings=settings, provider=provider) as (host, keys):
        key = keys["lifecycle"]
        running = asyncio.ensure_future(host.call(key, get("/gate")))  # holds the only worker
        await provider.entered.wait()
        queued = [asyncio.ensure_future(host.call(key, get("/gate"))) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(AppBusy) as caught:
            await host.call(key, get("/pid"))
        assert caught.value.code == "sandbox.busy"
        provider.gate.set()
        results = await asyncio.gather(running, *queued)
        assert all(r.status == 200 for r in results)
        assert host.metrics()[key]["busy"] == 1


async def test_a_burst_waits_its_turn_instead_of_being_shed() -> None:
    # 300 calls at once on one worker: each waits for it (first come, first served), none is refused
    async with running_host("lifecycle") as (host, keys):
        key = keys["lifecycle"]
        results = await asyncio.gather(*(host.call(key, get("/pid")) for _ in range(300)))
        assert [r.status for r in results] == [200] * 300
        assert "busy" not in host.metrics()[key]


async def test_a_call_waiting_past_the_queue_deadline_is_busy_with_a_retry_after() -> None:
    provider = GatedProvider()
    async with running_host("lifecycle", settings=SandboxSettings(queue_wait_ms=300), provider=provider) as (
        host,
        keys,
    ):
        key = keys["lifecycle"]
        running = asyncio.ensure_future(host.call(key, get("/gate")))  # holds the only worker
        await provider.entered.wait()
        with pytest.raises(AppBusy) as caught:
            await host.call(key, get("/pid"))
        assert caught.value.code == "sandbox.busy" and caught.value.retry_after_s >= 1
        provider.gate.set()
        assert (await running).status == 200
        assert host.metrics()[key]["busy"] == 1


async def test_crashed_worker_is_replaced() -> None:
    async with running_host("lifecycle") as (host, keys):
        key = keys["lifecycle"]
        first = body(await host.call(key, get("/pid")))["pid"]
        with pytest.raises(WorkerCrashed):
            await host.call(key, get("/crash"))
        second = body(await host.call(key, get("/pid")))["pid"]
        assert second != first
        assert not alive(first)
        assert host.metrics()[key]["worker_losses"] == 1


async def test_workers_are_recycled_after_n_calls() -> None:
    async with running_host("lifecycle", settings=SandboxSettings(recycle_after_calls=3)) as (host, keys):
        key = keys["lifecycle"]
        pids = [body(await host.call(key, get("/pid")))["pid"] for _ in range(6)]
        assert pids[0] == pids[1] == pids[2]
        assert pids[3] == pids[4] == pids[5]
        assert pids[0] != pids[3]
        assert host.metrics()[key]["recycled"] >= 1


async def test_worker_past_its_memory_budget_is_recycled_after_answering() -> None:
    async with running_host("lifecycle") as (host, keys):
        key = keys["lifecycle"]
        hoarder = body(await host.call(key, get("/hoard")))["pid"]  # the call itself still succeeds
        assert body(await host.call(key, get("/pid")))["pid"] != hoarder
        assert any(r["event"] == "worker recycled" and "memory" in r["reason"] for r in host.logs(key))


async def test_call_over_its_cpu_budget_fails() -> None:
    async with running_host("lifecycle") as (host, keys):
        key = keys["lifecycle"]
        with pytest.raises(CpuExceeded) as caught:
            await host.call(key, get("/burn"))  # burns 300 ms CPU; manifest allows 50
        assert caught.value.code == "sandbox.cpu_exceeded"
        assert (await host.call(key, get("/pid"))).status == 200
        assert host.metrics()[key]["cpu_ms_total"] >= 250


async def test_close_kills_and_reaps_every_worker() -> None:
    async with running_host("echo", "lifecycle") as (host, keys):
        pids = host.worker_pids(keys["echo"]) + host.worker_pids(keys["lifecycle"])
        assert len(pids) == 3 and all(alive(pid) for pid in pids)
    assert not any(exists(pid) for pid in pids)  # not even zombies
    with pytest.raises(SandboxError) as caught:
        await host.call(keys["echo"], get("/ping"))
    assert caught.value.code == "sandbox.closed"


async def test_app_that_fails_to_import_is_unavailable(tmp_path: Any) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "miniapp.toml").write_text('id = "test.yima.broken"\nname = "b"\nversion = "1.0.0"\n')
    (folder / "app.py").write_text("raise RuntimeError('boom at import')\n")
    for path in (tmp_path, folder):
        path.chmod(0o755)
    (folder / "app.py").chmod(0o644)
    from sandbox import SandboxHost

    host = SandboxHost(SandboxSettings())
    host.add_app(folder)
    try:
        with pytest.raises(SandboxError) as caught:
            await host.start()
    finally:
        await host.close()
    assert caught.value.code == "sandbox.app_unavailable"
    assert "boom at import" in caught.value.message


async def test_a_worker_that_never_gets_ready_fails_to_start_and_leaves_no_process(tmp_path: Any) -> None:
    folder = tmp_path / "hangs"
    folder.mkdir()
    (folder / "miniapp.toml").write_text(
        'id = "test.yima.hangs"\nname = "h"\nversion = "1.0.0"\n[limits]\nworkers = 2\n'
    )
    # blocks its import on a pipe nobody writes to: the worker never says Ready
    (folder / "app.py").write_text("import os\nos.read(os.pipe()[0], 1)\n")
    for path in (tmp_path, folder):
        path.chmod(0o755)
    (folder / "app.py").chmod(0o644)
    from sandbox import SandboxHost

    before = live_workers()
    host = SandboxHost(SandboxSettings(start_timeout_s=1.0))
    await host.start()
    try:
        for _ in range(2):  # not registered after the failure: the second load tries again, not "busy"
            with pytest.raises(SandboxError) as caught:
                await host.load(folder)
            assert caught.value.code == "sandbox.app_unavailable"
            assert "not ready within" in caught.value.message
            assert await no_workers_left(before)
        with pytest.raises(UnknownApp):
            await host.call("test.yima.hangs@1.0.0", get("/"))
    finally:
        await host.close()


def test_restart_backoff_grows_and_is_capped() -> None:
    delays = [restart_delay(n, 100, 1000) for n in range(1, 8)]
    assert delays == [0.0, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_manifest_limits_are_capped_by_operator_ceilings() -> None:
    asked = load_manifest(APPS / "huge_response").limits
    capped = effective_limits(asked, SandboxSettings(max_memory_mb=128, max_workers=1))
    assert capped == Limits(memory_mb=128, cpu_ms=asked.cpu_ms, timeout_ms=asked.timeout_ms, workers=1)


def test_logs_scrub_secrets() -> None:
    from sandbox._logs import AppLog

    log = AppLog("test.app@1.0.0")
    log.write(
        "info", "resident 13812345678 with id 34252419900101123X", token="abc", nested={"password": "x"}
    )
    record = log.records[-1]
    assert "13812345678" not in record["event"] and "34252419900101123X" not in record["event"]
    assert record["token"] == "[redacted]" and record["nested"] == {"password": "[redacted]"}


async def test_workers_ignore_the_terminals_ctrl_c() -> None:
    # Ctrl-C signals the terminal's whole foreground process group, workers included; the host stops its workers
    # itself (before, they died first and were reported lost and replaced during the server's shutdown).
    async with running_host("echo") as (host, keys):
        pids = host.worker_pids(keys["echo"])
        for pid in pids:
            status = Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines()  # noqa: ASYNC240
            ignored = next(int(line.split()[1], 16) for line in status if line.startswith("SigIgn:"))
            assert ignored & (1 << (signal.SIGINT - 1)), f"worker {pid} would die of Ctrl-C"
        assert pids
