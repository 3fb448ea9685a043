"""pytest plugin for mini-app tests (registered by yima-sdk as a `pytest11` entry point).

Fixtures:
    miniapp         a started `MiniApp` (the simulator) for the app folder; fresh per test, switches off
    miniapp_folder  the app folder: the nearest folder holding miniapp.toml, from the test file upwards;
                    override it in a conftest.py to test another folder

    def test_hello(miniapp):
        assert miniapp.get("/hello", user="alice").status == 200
        miniapp.switches.consent_denied = True          # also quota_exceeded, payment_failure
        assert miniapp.scan("clinic", user="grandpa") == ["Queue number 1"]  # the display lines

`MiniApp` (the type of the fixture) is `yima_sdk.simulator.Simulator`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from yima_sdk.simulator import Simulator as MiniApp

__all__ = ["MiniApp", "find_app_folder", "miniapp", "miniapp_folder"]


def find_app_folder(start: Path) -> Path:
    """The nearest folder at or above `start` that holds a miniapp.toml."""
    for folder in (start, *start.parents):
        if (folder / "miniapp.toml").is_file():
            return folder
    raise FileNotFoundError(f"no miniapp.toml in {start} or any folder above it")


@pytest.fixture
def miniapp_folder(request: pytest.FixtureRequest) -> Path:
    return find_app_folder(Path(request.path).resolve().parent)


@pytest.fixture
def miniapp(miniapp_folder: Path) -> Iterator[MiniApp]:
    with MiniApp(miniapp_folder) as simulator:
        yield simulator
