"""A faithful local payment provider: orders, a cashier, signed asynchronous notifications with retries and
backoff, a daily bill, and switches for the faults real providers show (failing calls, duplicate, late and
out-of-order notifications, a bill that disagrees).

`PaymentSimulator` is the provider's state and rules; `simulator_app.create_simulator_app` serves it over HTTP with
the same protocol a real provider speaks. Time comes from an injected clock so tests drive retries without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from server.onecard.payments import signing
from server.onecard.payments.base import (
    BillLine,
    OrderState,
    PaymentNotification,
    ProviderOrder,
    ProviderOrderStatus,
)

CST = ZoneInfo("Asia/Shanghai")

RETRY_SCHEDULE_S: tuple[int, ...] = (15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800)
"""Seconds between notification attempts after the first, as large providers document (about 24 h in all)."""

_json = msgspec.json.Encoder()


class SimError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class FakeClock:
    """A settable clock; share one between the simulator and the service under test."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = start or dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self._now

    def advance(self, seconds: float) -> dt.datetime:
        self._now += dt.timedelta(seconds=seconds)
        return self._now


def _real_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class SimOrder:
    order_no: str
    amount_fen: int
    description: str
    notify_url: str
    prepay_id: str
    created_at: dt.datetime
    state: OrderState = "pending"
    provider_txn_id: str | None = None
    paid_at: dt.datetime | None = None


@dataclass
class Delivery:
    notify_id: str
    order_no: str
    url: str
    body: bytes
    due_at: dt.datetime
    attempts: int = 0
    delivered: bool = False
    gave_up: bool = False
    last_status: int | None = None


@dataclass
class Faults:
    """Switches for provider misbehaviour; counters count down as they fire."""

    fail_creates: int = 0
    """The next N order creations answer 503 (the adapter must retry)."""
    fail_queries: int = 0
    bill_amount_delta: dict[str, int] = field(default_factory=dict)
    """Per order number: fen added to that line of the daily bill (plants a reconciliation mismatch)."""


@dataclass(frozen=True)
class Attempt:
    notify_id: str
    status: int | None
    delivered: bool


Sender = Callable[[str, dict[str, str], bytes], Any]


class PaymentSimulator:
    def __init__(
        self,
        *,
        merchant_id: str,
        merchant_key: str,
        signing_key: Ed25519PrivateKey | None = None,
        clock: Callable[[], dt.datetime] = _real_clock,
        base_url: str = "http://127.0.0.1:8100",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.merchant_id = merchant_id
        self.merchant_key = merchant_key
        self.signing_key = signing_key or Ed25519PrivateKey.generate()
        self.clock = clock
        self.base_url = base_url
        self.transport = transport
        self.orders: dict[str, SimOrder] = {}
        self.deliveries: list[Delivery] = []
        self.faults = Faults()

    @property
    def public_key(self) -> bytes:
        return self.signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    # -- the provider API ------------------------------------------------------------------------------------

    def create_order(
        self, merchant_id: str, order_no: str, amount_fen: int, description: str, notify_url: str
    ) -> ProviderOrder:
        if self.faults.fail_creates > 0:
            self.faults.fail_creates -= 1
            raise SimError(503, "SYSTEM_ERROR", "system busy, retry")
        if merchant_id != self.merchant_id:
            raise SimError(401, "MCH_NOT_EXISTS", "unknown merchant")
        if amount_fen <= 0 or not order_no or len(order_no) > 32:
            raise SimError(400, "PARAM_ERROR", "bad amount or order number")
        existing = self.orders.get(order_no)
        if existing is not None:
            # Merchant order numbers are idempotency keys: same order again -> same prepay; different -> refused.
            if (existing.amount_fen, existing.description, existing.notify_url) != (
                amount_fen,
                description,
                notify_url,
            ):
                raise SimError(409, "OUT_TRADE_NO_USED", "order number already used for another order")
            order = existing
        else:
            order = SimOrder(
                order_no, amount_fen, description, notify_url, "wx" + secrets.token_hex(12), self.clock()
            )
            self.orders[order_no] = order
        return ProviderOrder(
            order_no=order.order_no,
            prepay_id=order.prepay_id,
            pay_url=f"{self.base_url}/sim/cashier/{order.prepay_id}",
            pay_params={
                "merchant_id": self.merchant_id,
                "prepay_id": order.prepay_id,
                "nonce": secrets.token_hex(8),
            },
        )

    def query(self, order_no: str) -> ProviderOrderStatus | None:
        if self.faults.fail_queries > 0:
            self.faults.fail_queries -= 1
            raise SimError(503, "SYSTEM_ERROR", "system busy, retry")
        order = self.orders.get(order_no)
        if order is None:
            return None
        return ProviderOrderStatus(
            order.order_no, order.state, order.amount_fen, order.provider_txn_id, order.paid_at
        )

    def bill(self, day: dt.date) -> list[BillLine]:
        lines = []
        for order in self.orders.values():
            if (
                order.state == "paid"
                and order.paid_at is not None
                and order.paid_at.astimezone(CST).date() == day
            ):
                assert order.provider_txn_id is not None
                delta = self.faults.bill_amount_delta.get(order.order_no, 0)
                lines.append(
                    BillLine(order.order_no, order.provider_txn_id, order.amount_fen + delta, order.paid_at)
                )
        return sorted(lines, key=lambda line: line.paid_at)

    # -- the payer and the provider's side effects ---------------------------------------------------------------

    def _order(self, order_no: str) -> SimOrder:
        order = self.orders.get(order_no)
        if order is None:
            raise SimError(404, "ORDER_NOT_EXIST", "no such order")
        return order

    def _notify(self, order: SimOrder) -> str:
        now = self.clock()
        notification = PaymentNotification(
            notify_id="n" + secrets.token_hex(10),
            order_no=order.order_no,
            state=order.state,
            amount_fen=order.amount_fen,
            provider_txn_id=order.provider_txn_id or "",
            event_at=now,
            paid_at=order.paid_at,
        )
        self.deliveries.append(
            Delivery(
                notification.notify_id, order.order_no, order.notify_url, _json.encode(notification), now
            )
        )
        return notification.notify_id

    def pay(self, order_no: str, *, paying_first: bool = False, notify: bool = True) -> list[str]:
        """The payer pays. `paying_first` also emits the intermediate "paying" event (before "paid")."""
        order = self._order(order_no)
        if order.state in ("paid", "closed"):
            raise SimError(409, "ORDER_FINISHED", f"order is {order.state}")
        ids = []
        if paying_first:
            order.state = "paying"
            ids.append(self._notify(order))
        order.state = "paid"
        order.paid_at = self.clock()
        order.provider_txn_id = "4200" + secrets.token_hex(10)
        if notify:
            ids.append(self._notify(order))
        elif paying_first:
            ids.clear()
            self.deliveries.pop()
        return ids

    def close(self, order_no: str) -> list[str]:
        """The payer gave up (or payment failed): the order closes and the merchant is told."""
        order = self._order(order_no)
        if order.state in ("paid", "closed"):
            raise SimError(409, "ORDER_FINISHED", f"order is {order.state}")
        order.state = "closed"
        return [self._notify(order)]

    # -- delivering notifications ----------------------------------------------------------------------------

    def _signed_headers(self, body: bytes) -> dict[str, str]:
        timestamp = str(int(self.clock().timestamp()))
        nonce = secrets.token_hex(16)
        return {
            "content-type": "application/json",
            signing.NOTIFY_TIMESTAMP: timestamp,
            signing.NOTIFY_NONCE: nonce,
            signing.NOTIFY_SIGNATURE: signing.sign_notification(self.signing_key, timestamp, nonce, body),
        }

    async def _attempt(self, client: httpx.AsyncClient, delivery: Delivery) -> Attempt:
        delivery.attempts += 1
        try:
            response = await client.post(
                delivery.url, content=delivery.body, headers=self._signed_headers(delivery.body)
            )
            status: int | None = response.status_code
        except httpx.HTTPError:
            status = None
        delivery.last_status = status
        if status is not None and 200 <= status < 300:
            delivery.delivered = True
        elif delivery.attempts > len(RETRY_SCHEDULE_S):
            delivery.gave_up = True
        else:
            delivery.due_at = self.clock() + dt.timedelta(seconds=RETRY_SCHEDULE_S[delivery.attempts - 1])
        return Attempt(delivery.notify_id, status, delivery.delivered)

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(transport=self.transport, timeout=5.0) as client:
            yield client

    async def deliver_due(self, client: httpx.AsyncClient | None = None) -> list[Attempt]:
        """Attempt every notification that is due by the simulator's clock, oldest first."""
        now = self.clock()
        due = [d for d in self.deliveries if not d.delivered and not d.gave_up and d.due_at <= now]
        if not due:
            return []
        if client is not None:
            return [await self._attempt(client, d) for d in due]
        async with self._client() as client:
            return [await self._attempt(client, d) for d in due]

    async def redeliver(self, notify_ids: list[str]) -> list[Attempt]:
        """Send these notifications now, in this order, delivered or not: duplicates and reordering on demand."""
        by_id = {d.notify_id: d for d in self.deliveries}
        async with self._client() as client:
            return [await self._attempt(client, by_id[n]) for n in notify_ids if n in by_id]

    async def run_delivery_loop(self, interval_s: float = 1.0) -> None:
        """Deliver due notifications forever (a standalone simulator on the real clock), over one client: a
        client per tick cost a TLS context (tens of milliseconds of CPU) every second."""
        async with self._client() as client:
            while True:
                await self.deliver_due(client)
                await asyncio.sleep(interval_s)
