"""Starving the core: an app cannot keep unbounded capability calls in flight, cannot take more than the
capabilities' share of the provider (and its database pool), and cannot flood, bloat or forge the log."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
import pytest
from sandbox_helpers import get, running_host

from sandbox import CallInfo, InMemoryCapabilityProvider, SandboxHost, SandboxSettings

# on both loops (tests/event_loops.py): floods over the bridge
pytestmark = pytest.mark.both_loops


class GatedProvider(InMemoryCapabilityProvider):
    """`notify.wait_gate` holds until the test opens the gate; records how many ran inside at once."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.inside = 0
        self.peak = 0

    async def handle(
        self, call: CallInfo, capability: str, operation: str, args: list[Any], kwargs: dict[str, Any]
    ) -> Any:
        if (capability, operation) != ("notify", "wait_gate"):
            return await super().handle(call, capability, operation, args, kwargs)
        self.inside += 1
        self.peak = max(self.peak, self.inside)
        try:
            await self.gate.wait()
        finally:
            self.inside -= 1
        return True


async def _until(condition: Any, within_s: float = 10.0) -> None:
    """Wait (bounded) for an event the host reports; the requests arrive over the bridge asynchronously."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_capability_flood_is_bounded_per_app_and_in_the_provider() -> None:
    settings = SandboxSettings(max_app_inflight_capabilities=40, capability_concurrency=4)
    provider = GatedProvider()
    async with running_host("capability_flood", settings=settings, provider=provider) as (host, keys):
        key = keys["capability_flood"]
        # two workers, each call 32 requests (the per-call bound): 64 asked, 40 allowed for the app
        calls = [asyncio.create_task(host.call(key, get("/attack", n="32"))) for _ in range(2)]

        def seen() -> int:
            m = host.metrics()[key]
            return int(m.get("capability.notify", 0) + m.get("capability_refused_inflight", 0))

        await _until(lambda: seen() == 64 and provider.inside == 4)
        assert provider.peak == 4  # the provider's share, whatever the app asks
        provider.gate.set()
        answers = [msgspec.json.decode((await c).body) for c in calls]
    assert sum(a["served"] for a in answers) == 40
    refused = [code for a in answers for code in a["refused"]]
    assert refused == ["quota.exceeded"] * 24


async def test_log_is_rate_and_size_limited() -> None:
    settings = SandboxSettings(log_records_per_call=50, max_log_record_bytes=4096)
    async with running_host("log_flood", settings=settings) as (host, keys):
        key = keys["log_flood"]
        assert (await host.call(key, get("/attack", n="200"))).status == 200
        assert (await host.call(key, get("/huge"))).status == 200
        records = [r for r in host.logs(key) if r["source"] == "app"]
        dropped = host.metrics()[key]["log_dropped"]
    assert [r["i"] for r in records if r["event"] == "line"] == list(range(50))
    assert dropped == 150
    (huge,) = (r for r in records if r["event"] == "huge")
    assert huge["oversized_bytes"] > 1_000_000 and "rows" not in huge
    assert all(len(json.dumps(r)) < 8192 for r in records)


async def test_log_records_are_scrubbed_deep_and_keep_their_own_fields() -> None:
    async with running_host("log_flood") as (host, keys):
        key = keys["log_flood"]
        await host.call(key, get("/pii"))
        (record,) = (r for r in host.logs(key) if r["event"] == "visit")
    text = json.dumps(record, ensure_ascii=False)
    for secret in ("13800138000", "0013", "13900", "110105", "002X", "13700137000", "eyJ"):
        assert secret not in text, (secret, text)
    assert record["app"] == key and record["level"] == "info" and record["ts"] > 0
    assert record["arg_app"] == "gov.guangde.fake" and record["arg_level"] == "debug"


async def test_log_rate_per_minute_counts_every_worker_and_resets_each_minute() -> None:
    now = [1000.0]
    settings = SandboxSettings(log_records_per_minute=30)
    host = SandboxHost(settings)
    host.clock = lambda: now[0]
    from sandbox_helpers import APPS

    key = host.add_app(APPS / "log_flood")
    try:
        await host.start()
        await host.call(key, get("/attack", n="20"))
        await host.call(key, get("/attack", n="20"))
        assert host.metrics()[key]["log_dropped"] == 10
        now[0] += 60
        await host.call(key, get("/attack", n="20"))
        assert host.metrics()[key]["log_dropped"] == 10
    finally:
        await host.close()
