"""Each isolation layer is reported by the worker itself, really in force, and holds on its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sandbox_helpers import get, running_host
from yima_sdk._isolation._landlock import abi_version

from sandbox import LAYERS, LayerMissing, SandboxError, SandboxSettings
from sandbox.host import app_uid


async def test_production_worker_reports_every_layer_in_force() -> None:
    async with running_host("neighbour") as (host, keys):
        layers = {layer["name"]: layer for layer in host.worker_layers(keys["neighbour"])}
    assert set(layers) == set(LAYERS)
    assert all(layer["in_force"] for layer in layers.values()), layers
    settings = SandboxSettings.production()
    uid = app_uid("test.yima.neighbour", settings.worker_uid_base, settings.worker_uid_count)
    assert f"uids ({uid}, {uid}, {uid}) gids ({uid}, {uid}, {uid})" in layers["uid"]["detail"]
    assert "fds" in layers and "[0, 1, 2," in layers["fds"]["detail"]


async def test_kernel_provides_landlock() -> None:
    assert abi_version() >= 1


async def test_a_missing_required_layer_refuses_the_app_and_names_it() -> None:
    # stand-in for a kernel without seccomp: the layer is not applied, but production still requires it
    settings = SandboxSettings(applied_layers=frozenset(LAYERS) - {"seccomp"})
    with pytest.raises(LayerMissing) as caught:
        async with running_host("neighbour", settings=settings):
            pass
    assert caught.value.code == "sandbox.layer_missing"
    assert "seccomp" in caught.value.message


async def test_development_settings_run_without_a_layer_but_report_it() -> None:
    settings = SandboxSettings(applied_layers=frozenset(LAYERS) - {"netns"}, required_layers=frozenset())
    async with running_host("neighbour", settings=settings) as (host, keys):
        layers = {layer["name"]: layer for layer in host.worker_layers(keys["neighbour"])}
        assert (await host.call(keys["neighbour"], get("/ping"))).status == 200
    assert layers["netns"]["in_force"] is False
    assert layers["netns"]["detail"] == "not requested by the host"


def _only(*layers: str) -> SandboxSettings:
    return SandboxSettings(applied_layers=frozenset(layers), required_layers=frozenset(layers))


async def _attack_message(app: str, settings: SandboxSettings, **query: str) -> str:
    async with running_host(app, settings=settings) as (host, keys):
        with pytest.raises(SandboxError) as caught:
            await host.call(keys[app], get("/attack", **query))
    return caught.value.message


async def test_network_namespace_alone_blocks_postgres() -> None:
    # no seccomp here: the socket opens, but there is no route to 127.0.0.1
    message = await _attack_message("connect_postgres", _only("netns"))
    assert "Network is unreachable" in message


async def test_landlock_alone_blocks_reading_even_as_root() -> None:
    message = await _attack_message("read_passwd", _only("landlock"))
    assert "PermissionError" in message


async def test_seccomp_alone_blocks_sockets_and_fork() -> None:
    assert "PermissionError" in await _attack_message("tcp_socket", _only("seccomp"))
    assert "PermissionError" in await _attack_message("fork_bomb", _only("seccomp"))


async def test_uid_alone_blocks_signalling_the_root_host() -> None:
    assert "PermissionError" in await _attack_message("signal_host", _only("uid"))


async def test_rlimits_alone_forbid_writing_files(tmp_path: Path) -> None:
    tmp_path.chmod(0o777)  # noqa: ASYNC240
    target = tmp_path / "out.txt"
    message = await _attack_message("write_file", _only("rlimits"), where=str(target))
    # RLIMIT_FSIZE=0: the open succeeds (no Landlock here) but the first byte written is refused
    assert "File too large" in message
    assert os.path.getsize(target) == 0  # noqa: ASYNC240


def test_the_layers_refuse_to_start_beside_a_thread_they_would_not_confine() -> None:
    # Landlock and seccomp bind the calling thread and its later threads only: a thread started before them (by
    # a library, an executor, libuv) would keep the freedom they take away, so a worker with one refuses to start.
    script = (
        "import threading, time\n"
        "from yima_sdk._isolation import only_thread\n"
        "only_thread()\n"
        "threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n"
        "only_thread()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "2 threads before the isolation layers" in done.stderr
