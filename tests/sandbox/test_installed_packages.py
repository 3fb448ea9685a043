"""The interpreter's installed packages (the server's dependencies) are out of a worker's sight: not readable
(Landlock) and, on a root host, not even there to stat() (an empty tmpfs covers every site-packages)."""

from __future__ import annotations

import os
import site
import sys
from pathlib import Path

import litestar
import msgspec
import pytest
from sandbox_helpers import get, running_host
from yima_sdk import Request

from sandbox import MiniAppError, SandboxSettings

BASE_SITE = site.getsitepackages([sys.base_prefix])[0]
VENV_SITE = os.path.dirname(os.path.dirname(litestar.__file__))
A_SERVER_DEPENDENCY = litestar.__file__


def _base_site_file() -> str:
    return str(next(p for p in sorted(Path(BASE_SITE).rglob("*.py")) if p.is_file()))


TARGETS = [
    ("stat", A_SERVER_DEPENDENCY),
    ("read", A_SERVER_DEPENDENCY),
    ("read", "BASE_SITE_FILE"),
]


@pytest.mark.parametrize(("how", "path"), TARGETS)
async def test_site_packages_can_be_neither_read_nor_stat(how: str, path: str) -> None:
    path = _base_site_file() if path == "BASE_SITE_FILE" else path
    assert os.path.exists(path)  # noqa: ASYNC240  (it is there, for the host)
    async with running_host("read_site_packages") as (host, keys):
        key = keys["read_site_packages"]
        with pytest.raises(MiniAppError) as caught:
            await host.call(key, Request(method="GET", path="/attack", query={"path": path, "how": how}))
        # what the app still needs from site-packages, msgspec, and the stdlib keep working
        assert (await host.call(key, get("/msgspec"))).body == b'{"json":"[1]"}'
    assert caught.value.message.startswith(("FileNotFoundError", "PermissionError")), caught.value.message


@pytest.mark.parametrize("folder", [BASE_SITE, VENV_SITE])
async def test_listing_site_packages_shows_only_what_the_worker_needs(folder: str) -> None:
    listing = Request(method="GET", path="/attack", query={"path": folder, "how": "list"})
    async with running_host("read_site_packages") as (host, keys):
        try:
            answer = await host.call(keys["read_site_packages"], listing)
        except MiniAppError as refused:  # not even listable
            assert "PermissionError" in refused.message
        else:  # an empty tmpfs, with at most msgspec bound back
            assert set(msgspec.json.decode(answer.body)["names"]) <= {"msgspec"}


async def test_landlock_alone_keeps_site_packages_unreadable() -> None:
    settings = SandboxSettings(
        applied_layers=frozenset({"landlock"}), required_layers=frozenset({"landlock"})
    )
    async with running_host("read_site_packages", settings=settings) as (host, keys):
        with pytest.raises(MiniAppError) as caught:
            await host.call(
                keys["read_site_packages"],
                Request(method="GET", path="/attack", query={"path": _base_site_file()}),
            )
        assert (await host.call(keys["read_site_packages"], get("/msgspec"))).status == 200
    assert "PermissionError" in caught.value.message
