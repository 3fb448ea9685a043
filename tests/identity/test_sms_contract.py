"""One contract over every SMS sender: the console sender and the HTTP gateway adapter (against the simulator,
over real HTTP on loopback)."""

from __future__ import annotations

import asyncio
import threading

import pytest
import uvicorn

from server.identity.sms import ConsoleSender, HttpGatewaySender, SmsError, SmsSender
from server.identity.sms_simulator import SimulatorState, create_simulator
from server.retry import SMS_GATEWAY, RetryPolicy
from tests.conftest import free_port

QUICK = RetryPolicy.doubling("sms gateway, quick", attempts=SMS_GATEWAY.attempts, first_pause_s=0.01)


@pytest.fixture(scope="module")
def simulator():
    state = SimulatorState(secret="contract-secret")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_simulator(state), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.01)
    yield state, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


class Harness:
    """What the contract needs to observe or provoke, per backend."""

    def __init__(self, sender: SmsSender, delivered, fail_next=None, refuse=None) -> None:
        self.sender, self.delivered, self.fail_next, self.refuse = sender, delivered, fail_next, refuse


@pytest.fixture(params=["console", "gateway"])
async def harness(request, simulator):
    if request.param == "console":
        console = ConsoleSender()
        yield Harness(console, lambda phone: [m.params for m in console.messages_for(phone)])
        return
    state, url = simulator
    sender = HttpGatewaySender(url, state.secret, retry=QUICK)
    yield Harness(sender, lambda phone: [m["params"] for m in state.delivered if m["to"] == phone])
    await sender.close()


async def test_send_delivers_once_per_idempotency_key(harness):
    first = await harness.sender.send("13811112222", "login_code", {"code": "123456"}, idempotency_key="k-1")
    again = await harness.sender.send("13811112222", "login_code", {"code": "123456"}, idempotency_key="k-1")
    assert first == again
    assert harness.delivered("13811112222") == [{"code": "123456"}]


@pytest.fixture
async def gateway(simulator):
    """Failure paths exist only where there is a transport: the gateway adapter against the simulator."""
    state, url = simulator
    sender = HttpGatewaySender(url, state.secret, retry=QUICK)

    def fail_next(n: int) -> None:
        state.fail_next = n

    yield Harness(
        sender,
        lambda phone: [m["params"] for m in state.delivered if m["to"] == phone],
        fail_next=fail_next,
        refuse=state.refuse_numbers.add,
    )
    await sender.close()


async def test_transient_failures_are_retried(gateway):
    harness = gateway
    harness.fail_next(2)
    await harness.sender.send("13833334444", "login_code", {"code": "654321"}, idempotency_key="k-2")
    assert harness.delivered("13833334444") == [{"code": "654321"}]


async def test_persistent_failure_raises(gateway):
    harness = gateway
    harness.fail_next(10)
    with pytest.raises(SmsError, match="kept failing"):
        await harness.sender.send("13855556666", "login_code", {"code": "111111"}, idempotency_key="k-3")
    harness.fail_next(0)
    harness.refuse("13877778888")
    with pytest.raises(SmsError, match="refused"):
        await harness.sender.send("13877778888", "login_code", {"code": "1"}, idempotency_key="k-4")
    assert harness.delivered("13877778888") == []


async def test_gateway_rejects_a_wrong_signature(simulator):
    state, url = simulator
    wrong = HttpGatewaySender(url, "not-the-secret", retry=QUICK)
    with pytest.raises(SmsError, match="401"):
        await wrong.send("13899990000", "login_code", {"code": "1"}, idempotency_key="k-5")
    await wrong.close()
    assert [m for m in state.delivered if m["to"] == "13899990000"] == []


async def test_concurrent_sends_with_one_key_deliver_once(simulator):
    state, url = simulator
    sender = HttpGatewaySender(url, state.secret, retry=QUICK)
    ids = await asyncio.gather(
        *(sender.send("13800001111", "t", {"code": "9"}, idempotency_key="same") for _ in range(5))
    )
    await sender.close()
    assert len(set(ids)) == 1
    assert len([m for m in state.delivered if m["to"] == "13800001111"]) == 1
