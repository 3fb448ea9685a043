"""Plugins hand each other their services through typed ports, started on demand: the order of create_app's
list is free for every domain that takes its providers that way (server/plugins.py)."""

from __future__ import annotations

import pytest
from litestar import Litestar

import server.app
from server.app import PLUGIN_TYPES, create_app
from server.core import CorePlugin
from server.credentials.plugin import CredentialsPlugin
from server.identity.plugin import IdentityPlugin
from server.onecard.plugin import OnecardPlugin
from server.platform.plugin import PlatformPlugin
from server.plugins import StartOnce
from server.terminals.plugin import TerminalsPlugin
from tests.conftest import login, serve


async def test_a_start_runs_once_per_start_of_the_app_and_a_cycle_is_refused():
    started: list[int] = []

    async def start(app: Litestar) -> int:
        started.append(len(started))
        return len(started)

    once = StartOnce(start)
    app = Litestar()
    assert await once(app) == 1
    assert await once(app) == 1  # the second asker gets the same service
    once.reset()  # shut down: a restarted app starts a fresh one
    assert await once(app) == 2

    async def needs_itself(app: Litestar) -> int:
        return await cycle(app)

    cycle = StartOnce(needs_itself)
    with pytest.raises(RuntimeError, match="cycle"):
        await cycle(app)


async def test_providers_listed_after_their_consumers_start_first(settings, monkeypatch):
    """Terminals and the platform before one-card, credentials and identity, one-card before identity: each asks
    for what it needs, which starts it, and the resident's calls through those ports work."""
    consumers_first = (
        CorePlugin,
        TerminalsPlugin,
        PlatformPlugin,
        OnecardPlugin,
        CredentialsPlugin,
        IdentityPlugin,
    )
    monkeypatch.setattr(
        server.app,
        "PLUGIN_TYPES",
        consumers_first + tuple(p for p in PLUGIN_TYPES if p not in consumers_first),
    )
    app = create_app(settings)
    assert [type(p) for p in app.plugins.init][: len(consumers_first)] == list(consumers_first)
    async with serve(app) as client:
        resident = await login(client)  # identity
        r = await client.get("/v1/trust-list")  # credentials
        assert r.status_code == 200, r.text
        r = await client.get("/v1/me/payments", headers=resident.headers)  # the platform
        assert r.status_code == 200 and r.json() == [], r.text
        platform = app.state.platform
        # one service per domain: the platform's ports are the very services the app serves
        assert platform.caps.accounts is app.state.identity
        assert platform.caps.codes is app.state.credentials
        assert platform.caps.payments is app.state.onecard is platform.residents.payments
        assert app.state.terminals.scans.offline.settlement is app.state.onecard
        assert app.state.onecard.revocations is app.state.credentials.revocations
