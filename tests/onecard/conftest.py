"""The payment simulator served by uvicorn on a free 127.0.0.1 port, wired into the app through the HTTP adapter,
with one fake clock shared by simulator, adapter and service."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from server.onecard.payments.adapters import HttpPaymentProvider
from server.onecard.payments.simulator import FakeClock, PaymentSimulator
from server.onecard.payments.simulator_app import create_simulator_app
from server.onecard.service import CST
from tests.conftest import free_port


class FlakyTransport(httpx.AsyncBaseTransport):
    """The network between provider and us: fails the next `failures` requests as a refused connection."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.failures = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.failures > 0:
            self.failures -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


@dataclass
class SimulatedProvider:
    simulator: PaymentSimulator
    clock: FakeClock
    control: httpx.AsyncClient
    """Talks to the simulator's /sim control routes over HTTP."""
    adapter: HttpPaymentProvider
    network: FlakyTransport
    url: str

    @property
    def day(self) -> dt.date:
        return self.clock().astimezone(CST).date()


async def _no_wait(_: float) -> None:
    return None


@pytest.fixture
async def provider(client) -> AsyncIterator[SimulatedProvider]:
    # A day of its own, far from real time, so each test's reconciliation sees only its own orders.
    start = dt.datetime(2031, 1, 1, 10, tzinfo=CST) + dt.timedelta(days=secrets.randbelow(3000))
    clock = FakeClock(start.astimezone(dt.UTC))
    network = FlakyTransport(httpx.ASGITransport(app=client.app))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = client.app.state.onecard.config
    simulator = PaymentSimulator(
        merchant_id=config.merchant_id,
        merchant_key=config.merchant_key,
        clock=clock,
        base_url=url,
        transport=network,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_simulator_app(simulator), host="127.0.0.1", port=port, log_config=None, lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # readiness, not time: uvicorn flips this once the socket listens
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    adapter = HttpPaymentProvider(
        url,
        merchant_id=config.merchant_id,
        merchant_key=config.merchant_key,
        provider_public_key=simulator.public_key,
        clock=clock,
        sleep=_no_wait,
    )
    onecard = client.app.state.onecard
    saved = onecard.payments, onecard.clock
    onecard.payments, onecard.clock = adapter, clock
    try:
        async with httpx.AsyncClient(base_url=url) as control:
            yield SimulatedProvider(simulator, clock, control, adapter, network, url)
    finally:
        onecard.payments, onecard.clock = saved
        await adapter.close()
        server.should_exit = True
        await task
