"""Payment providers for one-card top-ups: the interface, the HTTP adapter, and a faithful local simulator."""

from server.onecard.payments.base import (
    BillLine,
    NotificationError,
    OrderState,
    PaymentNotification,
    PaymentProvider,
    ProviderError,
    ProviderOrder,
    ProviderOrderStatus,
)

__all__ = [
    "BillLine",
    "NotificationError",
    "OrderState",
    "PaymentNotification",
    "PaymentProvider",
    "ProviderError",
    "ProviderOrder",
    "ProviderOrderStatus",
]
