"""The payment provider interface every adapter implements, and the provider's wire types.

The protocol follows the common shape of Chinese payment providers (WeChat Pay v3, Alipay): the merchant creates an
order with its own order number (idempotent at the provider), the payer pays in the provider's cashier, and the
provider posts a signed asynchronous notification, retrying with backoff until the merchant answers 2xx. A daily
bill lists every settled transaction for reconciliation.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Mapping
from typing import Literal

import msgspec

OrderState = Literal["pending", "paying", "paid", "closed"]
"""Provider-side states. "paid" and "closed" are final; "paying" means the payer is authorising."""


class ProviderError(Exception):
    """The provider could not be reached or refused the call; `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class NotificationError(Exception):
    """A notification was refused: `code` is "signature" (forged or altered) or "malformed"."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code


class ProviderOrder(msgspec.Struct, frozen=True):
    """What the payer's phone needs to pay: the cashier URL and the parameters to open it."""

    order_no: str
    prepay_id: str
    pay_url: str
    pay_params: dict[str, str]


class ProviderOrderStatus(msgspec.Struct, frozen=True):
    order_no: str
    state: OrderState
    amount_fen: int
    provider_txn_id: str | None = None
    paid_at: dt.datetime | None = None


class PaymentNotification(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of a provider notification (after its signature was checked)."""

    notify_id: str
    """Stable across redeliveries of the same event."""
    order_no: str
    state: OrderState
    amount_fen: int
    provider_txn_id: str
    event_at: dt.datetime
    paid_at: dt.datetime | None = None


class BillLine(msgspec.Struct, frozen=True):
    """One settled transaction in the provider's daily bill."""

    order_no: str
    provider_txn_id: str
    amount_fen: int
    paid_at: dt.datetime


class PaymentProvider(abc.ABC):
    """A payment provider as the one-card service sees it."""

    name: str

    @abc.abstractmethod
    async def create_order(
        self, order_no: str, amount_fen: int, description: str, notify_url: str
    ) -> ProviderOrder:
        """Create (or return the existing, if identical) order; raise `ProviderError`."""

    @abc.abstractmethod
    async def query_order(self, order_no: str) -> ProviderOrderStatus | None:
        """The provider's view of an order, or None if it does not know it."""

    @abc.abstractmethod
    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> PaymentNotification:
        """Check the notification's signature and decode it; raise `NotificationError`."""

    @abc.abstractmethod
    async def daily_bill(self, day: dt.date) -> list[BillLine]:
        """Every transaction the provider settled on `day` (China Standard Time)."""

    async def close(self) -> None:  # noqa: B027 - optional hook: most adapters hold nothing to release
        """Release connections."""
