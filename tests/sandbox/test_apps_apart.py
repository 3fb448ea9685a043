"""One app cannot cripple another: each app runs under its own uid, the calls that name a process work only on
the worker itself, and RLIMIT_NPROC (counted per uid) is each app's own."""

from __future__ import annotations

import pytest
from sandbox_helpers import get, running_host

from sandbox import MiniAppError, SandboxHost, SandboxSettings
from sandbox.host import app_uid


def _address_space_limit(pid: int) -> str:
    with open(f"/proc/{pid}/limits", encoding="ascii") as limits:
        return next(line for line in limits if line.startswith("Max address space"))


async def _prlimit_neighbour(host: SandboxHost, keys: dict[str, str], what: str) -> MiniAppError:
    (pid,) = host.worker_pids(keys["neighbour"])
    before = _address_space_limit(pid)
    with pytest.raises(MiniAppError) as caught:
        await host.call(keys["prlimit_neighbour"], get("/attack", pid=str(pid), what=what))
    assert _address_space_limit(pid) == before
    assert host.worker_pids(keys["neighbour"]) == [pid]
    assert (await host.call(keys["neighbour"], get("/ping"))).status == 200
    return caught.value


@pytest.mark.parametrize("what", ["prlimit", "getpriority", "affinity"])
async def test_lowering_or_probing_a_neighbours_limits_is_refused(what: str) -> None:
    async with running_host("prlimit_neighbour", "neighbour") as (host, keys):
        error = await _prlimit_neighbour(host, keys, what)
        assert "PermissionError" in error.message, error.message
        # on itself the same calls still work (the runtime and the stdlib use them)
        own = await host.call(keys["prlimit_neighbour"], get("/own"))
        assert own.status == 200


async def test_each_app_runs_under_its_own_uid() -> None:
    settings = SandboxSettings.production()
    async with running_host("prlimit_neighbour", "neighbour") as (host, keys):
        details = {name: host.worker_layers(key) for name, key in keys.items()}
    uids = {}
    for name, layers in details.items():
        uid = next(layer["detail"] for layer in layers if layer["name"] == "uid")
        app_id = {"neighbour": "test.yima.neighbour", "prlimit_neighbour": "test.yima.prlimit-neighbour"}[
            name
        ]
        expected = app_uid(app_id, settings.worker_uid_base, settings.worker_uid_count)
        assert f"({expected}, {expected}, {expected})" in uid, uid
        uids[name] = expected
    assert uids["neighbour"] != uids["prlimit_neighbour"]


def _only(*layers: str) -> SandboxSettings:
    return SandboxSettings(applied_layers=frozenset(layers), required_layers=frozenset(layers))


@pytest.mark.parametrize("layer", ["seccomp", "uid"])
async def test_each_of_seccomp_and_uid_alone_refuses_prlimit_on_a_neighbour(layer: str) -> None:
    # seccomp alone: both workers stay root, only the pid filter stands in the way;
    # uid alone: no filter, but the neighbour belongs to another uid
    async with running_host("prlimit_neighbour", "neighbour", settings=_only(layer)) as (host, keys):
        error = await _prlimit_neighbour(host, keys, "prlimit")
    assert "PermissionError" in error.message, error.message


async def test_a_thread_bomb_does_not_stop_a_neighbours_threads() -> None:
    settings = SandboxSettings(processes=64)  # a small per-app budget keeps the bomb quick
    async with running_host("thread_bomb", "neighbour", settings=settings) as (host, keys):
        bomb = await host.call(keys["thread_bomb"], get("/attack"))
        assert b"can't start new thread" in bomb.body, bomb.body  # the bomb ran into its own limit...
        answer = await host.call(keys["neighbour"], get("/thread"))  # ...and only into its own
        assert answer.status == 200 and answer.body == b'{"thread":true}'
