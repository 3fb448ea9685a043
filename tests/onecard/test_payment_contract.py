"""One contract for every payment adapter: the HTTP adapter against the simulator served by uvicorn, and the
in-process adapter. Both must create idempotently, report state, verify notifications and list the day's bill."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server.onecard.payments import signing
from server.onecard.payments.adapters import LocalPaymentProvider
from server.onecard.payments.base import NotificationError, PaymentProvider, ProviderError
from server.onecard.payments.simulator import PaymentSimulator


@dataclass
class Subject:
    adapter: PaymentProvider
    simulator: PaymentSimulator
    day: dt.date


@pytest.fixture(params=["http", "local"])
async def subject(request, provider) -> AsyncIterator[Subject]:
    if request.param == "http":
        yield Subject(provider.adapter, provider.simulator, provider.day)
    else:
        yield Subject(LocalPaymentProvider(provider.simulator), provider.simulator, provider.day)


def order_no() -> str:
    return "T" + secrets.token_hex(10)


async def test_create_order_is_idempotent_on_the_order_number(subject):
    no = order_no()
    first = await subject.adapter.create_order(no, 500, "top-up", "http://127.0.0.1/notify")
    again = await subject.adapter.create_order(no, 500, "top-up", "http://127.0.0.1/notify")
    assert first.prepay_id == again.prepay_id and first.pay_url and first.order_no == no
    with pytest.raises(ProviderError) as refused:
        await subject.adapter.create_order(no, 501, "top-up", "http://127.0.0.1/notify")
    assert refused.value.retryable is False


async def test_transient_failures_are_retried(subject):
    subject.simulator.faults.fail_creates = 2
    created = await subject.adapter.create_order(order_no(), 100, "top-up", "http://127.0.0.1/notify")
    assert created.prepay_id and subject.simulator.faults.fail_creates == 0
    subject.simulator.faults.fail_creates = 10
    with pytest.raises(ProviderError) as failed:
        await subject.adapter.create_order(order_no(), 100, "top-up", "http://127.0.0.1/notify")
    assert failed.value.retryable is True
    subject.simulator.faults.fail_creates = 0


async def test_state_notification_and_bill(subject):
    no = order_no()
    assert await subject.adapter.query_order(no) is None
    await subject.adapter.create_order(no, 800, "top-up", "http://127.0.0.1/notify")
    pending = await subject.adapter.query_order(no)
    assert pending is not None and pending.state == "pending"
    subject.simulator.pay(no)
    paid = await subject.adapter.query_order(no)
    assert paid is not None and paid.state == "paid" and paid.provider_txn_id and paid.amount_fen == 800

    body = subject.simulator.deliveries[-1].body
    headers = subject.simulator._signed_headers(body)
    note = subject.adapter.parse_notification(headers, body)
    assert (note.order_no, note.state, note.amount_fen) == (no, "paid", 800)
    with pytest.raises(NotificationError) as bad:
        subject.adapter.parse_notification(headers, body.replace(b"800", b"900"))
    assert bad.value.code == "signature"
    ts, nonce = headers[signing.NOTIFY_TIMESTAMP], headers[signing.NOTIFY_NONCE]
    forged = {
        **headers,
        signing.NOTIFY_SIGNATURE: signing.sign_notification(Ed25519PrivateKey.generate(), ts, nonce, body),
    }
    with pytest.raises(NotificationError):
        subject.adapter.parse_notification(forged, body)

    bill = await subject.adapter.daily_bill(subject.day)
    assert [(line.order_no, line.amount_fen) for line in bill if line.order_no == no] == [(no, 800)]
    assert await subject.adapter.daily_bill(subject.day - dt.timedelta(days=1)) == []
