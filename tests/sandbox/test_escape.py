"""The escape suite: each hostile mini-app tries one way out; each attempt must be contained.

Contained means: the call fails with a clear error code, the hostile app still serves its `/ok` route
afterwards (its worker replaced where the attack killed it), and the host keeps serving a neighbour.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio
from sandbox_helpers import all_dead, get, running_host, when_replaced
from yima_sdk import Request

from sandbox import SandboxError, SandboxHost, SandboxSettings

HOSTILE = [
    "tcp_socket",
    "udp_socket",
    "connect_postgres",
    "connect_redis",
    "resolve_host",
    "read_passwd",
    "read_host_env",
    "read_data_folder",
    "write_file",
    "fork_bomb",
    "spawn_subprocess",
    "allocate_4gb",
    "spin_forever",
    "recurse_forever",
    "huge_response",
    "garbage_frames",
    "signal_host",
    "ptrace_host",
    "io_uring",
]


@pytest_asyncio.fixture(scope="module")
async def escape_host() -> AsyncIterator[tuple[SandboxHost, dict[str, str]]]:
    os.environ["YIMA_ESCAPE_CANARY"] = "canary-secret-value"  # the workers must never see this
    try:
        # 22 apps' workers start at once here, each with every isolation layer: on a busy machine they share
        # two cores, so each gets more than the production 15 s to start (starting is not what this tests).
        settings = msgspec.structs.replace(SandboxSettings.production(), start_timeout_s=90.0)
        async with running_host(*HOSTILE, "neighbour", settings=settings) as started:
            yield started
    finally:
        del os.environ["YIMA_ESCAPE_CANARY"]


async def _attack(host: SandboxHost, key: str, request: Request | None = None) -> SandboxError:
    with pytest.raises(SandboxError) as caught:
        await host.call(key, request or get("/attack"))
    return caught.value


async def _still_healthy(host: SandboxHost, keys: dict[str, str], name: str) -> None:
    ok = await when_replaced(host, keys[name], get("/ok"))
    assert ok.status == 200
    assert (await host.call(keys["neighbour"], get("/ping"))).status == 200


PERMISSION = "PermissionError"


@pytest.mark.parametrize(
    ("name", "code", "needle"),
    [
        ("tcp_socket", "miniapp.error", PERMISSION),
        ("udp_socket", "miniapp.error", PERMISSION),
        ("connect_postgres", "miniapp.error", PERMISSION),
        ("connect_redis", "miniapp.error", PERMISSION),
        ("resolve_host", "miniapp.error", "gaierror"),
        ("read_passwd", "miniapp.error", PERMISSION),
        ("read_host_env", "miniapp.error", PERMISSION),
        ("fork_bomb", "miniapp.error", PERMISSION),
        ("spawn_subprocess", "miniapp.error", PERMISSION),
        ("allocate_4gb", "miniapp.memory", "memory"),
        ("recurse_forever", "miniapp.recursion", "recursion"),
        ("huge_response", "sandbox.response_too_large", "limit"),
        ("signal_host", "miniapp.error", PERMISSION),
        ("ptrace_host", "miniapp.error", "Operation not permitted"),
        # refused twice over: by the allow-list, and before the event loop exists (libuv would make one)
        ("io_uring", "miniapp.error", "io_uring_setup: Operation not permitted"),
    ],
)
async def test_attack_fails_with_clear_error_and_app_keeps_serving(
    escape_host: tuple[SandboxHost, dict[str, str]], name: str, code: str, needle: str
) -> None:
    host, keys = escape_host
    error = await _attack(host, keys[name])
    assert error.code == code, str(error)
    assert needle in error.message
    await _still_healthy(host, keys, name)


async def test_worker_environment_is_scrubbed(escape_host: tuple[SandboxHost, dict[str, str]]) -> None:
    host, keys = escape_host
    env = msgspec.json.decode((await host.call(keys["read_host_env"], get("/own-env"))).body)
    assert "YIMA_ESCAPE_CANARY" not in env
    assert set(env) <= {
        "LANG",
        "LC_ALL",
        "TZ",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONHASHSEED",
        "MALLOC_ARENA_MAX",
    }


async def test_data_folder_and_master_key_unreadable_even_when_world_readable(
    escape_host: tuple[SandboxHost, dict[str, str]], tmp_path: Path
) -> None:
    host, keys = escape_host
    data = tmp_path / "data"
    data.mkdir()
    key_file = data / "master.key"
    key_file.write_bytes(os.urandom(32))
    # open the permissions so only the sandbox layers (not file modes) stand in the way
    for path in (tmp_path, data):
        path.chmod(0o755)
    key_file.chmod(0o644)
    body = msgspec.json.encode({"folder": str(data), "file": str(key_file), "list": True})
    error = await _attack(host, keys["read_data_folder"], Request(method="GET", path="/attack", body=body))
    assert error.code == "miniapp.error"
    assert PERMISSION in error.message
    body = msgspec.json.encode({"folder": str(data), "file": str(key_file)})
    error = await _attack(host, keys["read_data_folder"], Request(method="GET", path="/attack", body=body))
    assert PERMISSION in error.message


@pytest.mark.parametrize("where", ["/tmp/yima-escape.txt", "APP_FOLDER"])
async def test_writing_files_is_refused(escape_host: tuple[SandboxHost, dict[str, str]], where: str) -> None:
    host, keys = escape_host
    target = where.replace("APP_FOLDER", str(Path(__file__).parent / "apps" / "write_file" / "escaped.txt"))
    error = await _attack(host, keys["write_file"], get("/attack", where=target))
    assert PERMISSION in error.message
    assert not Path(target).exists()  # noqa: ASYNC240
    await _still_healthy(host, keys, "write_file")


async def test_spinning_forever_is_killed_at_the_deadline_and_replaced(
    escape_host: tuple[SandboxHost, dict[str, str]],
) -> None:
    host, keys = escape_host
    before = host.worker_pids(keys["spin_forever"])
    error = await _attack(host, keys["spin_forever"])
    assert error.code == "sandbox.deadline_exceeded"
    assert await all_dead(before)
    await _still_healthy(host, keys, "spin_forever")
    assert host.worker_pids(keys["spin_forever"]) != before


@pytest.mark.parametrize(
    ("kind", "code"), [("garbage", "sandbox.protocol_error"), ("oversized", "sandbox.response_too_large")]
)
async def test_garbage_frames_kill_the_worker_not_the_host(
    escape_host: tuple[SandboxHost, dict[str, str]], kind: str, code: str
) -> None:
    host, keys = escape_host
    before = host.worker_pids(keys["garbage_frames"])
    error = await _attack(host, keys["garbage_frames"], get("/attack", kind=kind))
    assert error.code == code
    assert await all_dead(before)
    await _still_healthy(host, keys, "garbage_frames")


async def test_host_process_survives_signal_and_ptrace(
    escape_host: tuple[SandboxHost, dict[str, str]],
) -> None:
    host, keys = escape_host
    await _attack(host, keys["signal_host"])
    await _attack(host, keys["ptrace_host"])
    # we are the host: still here, and no tracer attached to us
    with open("/proc/self/status", encoding="ascii") as status:  # noqa: ASYNC230
        tracer = next(line for line in status if line.startswith("TracerPid:"))
    assert tracer.split()[1] == "0"
    metrics = host.metrics()
    assert metrics[keys["neighbour"]]["broken"] is None
