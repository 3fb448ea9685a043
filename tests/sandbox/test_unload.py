"""Unloading one app version from a running host: its workers are killed and reaped before unload() returns
(no orphans, not even zombies), its callers get the host's unknown-app error, its neighbours keep serving, and
the same version can be loaded again."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from sandbox_helpers import APPS, alive, exists, get, running_host

from sandbox import UnknownApp

# on both loops (tests/event_loops.py): the host reaping a version's workers
pytestmark = pytest.mark.both_loops


async def test_unload_reaps_the_versions_workers_and_later_calls_are_unknown() -> None:
    async with running_host("echo", "lifecycle") as (host, keys):
        key = keys["echo"]
        assert msgspec.json.decode((await host.call(key, get("/books/7"))).body) == {"id": "7"}
        pids = host.worker_pids(key)
        neighbour = host.worker_pids(keys["lifecycle"])
        assert len(pids) == 2 and all(alive(pid) for pid in pids)

        await host.unload(key)

        assert not any(exists(pid) for pid in pids)  # reaped, not merely killed: no zombies left behind
        with pytest.raises(UnknownApp) as caught:
            await host.call(key, get("/books/7"))
        assert caught.value.code == "sandbox.unknown_app"
        # nothing respawned them, and the other app's workers were not touched
        await asyncio.sleep(0)
        assert key not in host.metrics()
        assert host.worker_pids(keys["lifecycle"]) == neighbour and all(alive(p) for p in neighbour)
        await host.unload(key)  # a second unload is a no-op

        # the same version can come back
        again = await host.load(APPS / "echo")
        assert again == key
        assert msgspec.json.decode((await host.call(key, get("/books/8"))).body) == {"id": "8"}
        assert not set(host.worker_pids(key)) & set(pids)
