"""The adapters: `HttpPaymentProvider` speaks the provider's HTTP protocol (to a real provider or the simulator
served by uvicorn); `LocalPaymentProvider` calls an in-process `PaymentSimulator` directly (`yima dev`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import httpx
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from server.onecard.payments import signing
from server.onecard.payments.base import (
    BillLine,
    NotificationError,
    PaymentNotification,
    PaymentProvider,
    ProviderError,
    ProviderOrder,
    ProviderOrderStatus,
)
from server.onecard.payments.simulator import PaymentSimulator, SimError, SimOrder
from server.retry import PAYMENT_PROVIDER, PAYMENT_SIMULATOR, RetryPolicy, retrying

NOTIFICATION_MAX_AGE_S = 300
"""A notification signed longer ago than this is refused as a replay; the provider re-signs every retry."""

_notification = msgspec.json.Decoder(PaymentNotification)
_order = msgspec.json.Decoder(ProviderOrder)
_status = msgspec.json.Decoder(ProviderOrderStatus)
_bill = msgspec.json.Decoder(list[BillLine])
_json = msgspec.json.Encoder()


def _retryable(exc: Exception) -> bool:
    return isinstance(exc, ProviderError) and exc.retryable


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def verify_notification(
    public_key: Ed25519PublicKey, headers: Mapping[str, str], body: bytes, now: dt.datetime
) -> PaymentNotification:
    """The one notification check both adapters run: fresh timestamp, valid Ed25519 signature, strict body."""
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get(signing.NOTIFY_TIMESTAMP.lower(), "")
    nonce = lowered.get(signing.NOTIFY_NONCE.lower(), "")
    signature = lowered.get(signing.NOTIFY_SIGNATURE.lower(), "")
    if not (timestamp.isdigit() and nonce and signature):
        raise NotificationError("signature", "signature headers missing")
    if abs(int(timestamp) - now.timestamp()) > NOTIFICATION_MAX_AGE_S:
        raise NotificationError("signature", "signature timestamp too far from now")
    if not signing.check_notification(public_key, timestamp, nonce, body, signature):
        raise NotificationError("signature", "signature does not match")
    try:
        return _notification.decode(body)
    except msgspec.DecodeError as exc:
        raise NotificationError("malformed", str(exc)) from None


class HttpPaymentProvider(PaymentProvider):
    """The provider over HTTP. Creation and queries are retried with backoff on transport errors and 5xx:
    safe, because the provider treats our order number as an idempotency key."""

    name = "http"

    def __init__(
        self,
        base_url: str,
        *,
        merchant_id: str,
        merchant_key: str,
        provider_public_key: bytes,
        clock: Callable[[], dt.datetime] = _utcnow,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy = PAYMENT_PROVIDER,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        timeout_s: float = 5.0,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), transport=transport, timeout=timeout_s
        )
        self._merchant_id = merchant_id
        self._merchant_key = merchant_key
        self._public_key = Ed25519PublicKey.from_public_bytes(provider_public_key)
        self.clock = clock
        self._retry = retry
        self._sleep = sleep

    async def _call(self, method: str, path: str, body: bytes = b"") -> httpx.Response:
        async def attempt() -> httpx.Response:
            timestamp = str(int(self.clock().timestamp()))
            auth = signing.sign_request(
                self._merchant_key, self._merchant_id, method, path, timestamp, secrets.token_hex(12), body
            )
            headers = {signing.REQUEST_AUTH: auth, "content-type": "application/json"}
            try:
                response = await self._client.request(method, path, content=body or None, headers=headers)
            except httpx.HTTPError as exc:
                raise ProviderError(f"provider unreachable: {type(exc).__name__}", retryable=True) from None
            if response.status_code >= 500:
                raise ProviderError(f"provider answered {response.status_code}", retryable=True)
            return response

        return await retrying(self._retry, attempt, transient=_retryable, sleep=self._sleep)

    @staticmethod
    def _refused(response: httpx.Response) -> ProviderError:
        try:
            code = response.json().get("code", "")
        except ValueError:
            code = ""
        return ProviderError(f"provider refused ({response.status_code} {code})", retryable=False)

    async def create_order(
        self, order_no: str, amount_fen: int, description: str, notify_url: str
    ) -> ProviderOrder:
        body = _json.encode(
            {
                "merchant_id": self._merchant_id,
                "order_no": order_no,
                "amount_fen": amount_fen,
                "description": description,
                "notify_url": notify_url,
            }
        )
        response = await self._call("POST", "/v3/pay/orders", body)
        if response.status_code != 200:
            raise self._refused(response)
        return _order.decode(response.content)

    async def query_order(self, order_no: str) -> ProviderOrderStatus | None:
        response = await self._call("GET", f"/v3/pay/orders/{order_no}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._refused(response)
        return _status.decode(response.content)

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> PaymentNotification:
        return verify_notification(self._public_key, headers, body, self.clock())

    async def daily_bill(self, day: dt.date) -> list[BillLine]:
        response = await self._call("GET", f"/v3/bills?date={day.isoformat()}")
        if response.status_code != 200:
            raise self._refused(response)
        return _bill.decode(response.content)

    async def close(self) -> None:
        await self._client.aclose()


class SimulatorOrders(Protocol):
    """Where an in-process simulator keeps its orders when several processes must see one provider."""

    async def load(self) -> list[SimOrder]:
        """Every order, as last saved."""
        ...

    async def save(self, order: SimOrder) -> None:
        """Store a new order or its new state."""
        ...


class LocalPaymentProvider(PaymentProvider):
    """An in-process simulator behind the same interface: no network, same rules and signatures.

    With `orders` (development: PostgreSQL), the simulator's orders outlive the process and are shared: `yima dev`
    and a `yima onecard reconcile` run beside it, each with its own simulator, see one provider. Without, the
    orders live in memory only (tests drive the simulator directly).
    """

    name = "local"

    def __init__(self, simulator: PaymentSimulator, orders: SimulatorOrders | None = None) -> None:
        self.simulator = simulator
        self._orders = orders
        self._public_key = Ed25519PublicKey.from_public_bytes(simulator.public_key)

    async def _load(self) -> None:
        if self._orders is not None:
            self.simulator.orders.update((o.order_no, o) for o in await self._orders.load())

    async def _save(self, order_no: str) -> None:
        if self._orders is not None:
            await self._orders.save(self.simulator.orders[order_no])

    async def create_order(
        self, order_no: str, amount_fen: int, description: str, notify_url: str
    ) -> ProviderOrder:
        await self._load()  # an order number already used, perhaps by another process, is checked against it

        async def attempt() -> ProviderOrder:
            try:
                return self.simulator.create_order(
                    self.simulator.merchant_id, order_no, amount_fen, description, notify_url
                )
            except SimError as exc:
                raise ProviderError(exc.message, retryable=exc.status >= 500) from None

        # Retried like the HTTP adapter, without pauses (nothing travels): both behave alike on transient faults.
        order = await retrying(PAYMENT_SIMULATOR, attempt, transient=_retryable)
        await self._save(order_no)
        return order

    async def query_order(self, order_no: str) -> ProviderOrderStatus | None:
        await self._load()
        try:
            return self.simulator.query(order_no)
        except SimError as exc:
            raise ProviderError(exc.message, retryable=exc.status >= 500) from None

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> PaymentNotification:
        return verify_notification(self._public_key, headers, body, self.simulator.clock())

    async def daily_bill(self, day: dt.date) -> list[BillLine]:
        await self._load()
        return self.simulator.bill(day)

    # -- playing the payer (development routes) ----------------------------------------------------------------

    async def cashier(self, prepay_id: str) -> SimOrder | None:
        """The order a pay URL's prepay id names."""
        await self._load()
        return next((o for o in self.simulator.orders.values() if o.prepay_id == prepay_id), None)

    async def pay(self, order_no: str) -> list[str]:
        """The payer pays: the order is paid and its notification queued. Raises `SimError` (404, 409)."""
        await self._load()
        notify_ids = self.simulator.pay(order_no)
        await self._save(order_no)
        return notify_ids
