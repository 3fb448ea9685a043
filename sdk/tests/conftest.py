"""The `world` fixture: the SDK tests' shared credential material (sdk_world.py)."""

from __future__ import annotations

import pytest
from sdk_world import World


@pytest.fixture(scope="session")
def world() -> World:
    return World()
