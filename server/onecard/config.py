"""One-card rules that an operator may tune: floors, top-up bounds, device certificate limits, payment provider."""

from __future__ import annotations

import msgspec

from server.settings import Settings


class OnecardConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Passed to the plugin; defaults suit development and tests (in-process payment simulator)."""

    issuer: int = 341822
    """Administrative division code written into device certificates (341822: Guangde)."""
    floor_fen: int = 0
    """Online operations (charges) never take a balance below this."""
    offline_floor_fen: int = -3000
    """Offline rides may take a balance below zero, but never below this: the debt the offline limits accept."""
    min_topup_fen: int = 100
    max_topup_fen: int = 100_000
    topup_expiry_s: int = 1800
    """A pending top-up order is closed locally after this; a late 'paid' notification still credits it."""
    certificate_lifetime_h: int = 72
    max_offline_uses: int = 20
    """Offline rides one device certificate may settle."""
    max_offline_amount_fen: int = 5000
    """Fen one device certificate may settle offline in total."""
    max_active_certificates: int = 3
    offline_clock_skew_s: int = 300
    """Tolerance when checking an offline record's scan time against its certificate's validity."""
    payment_provider_url: str = ""
    """Base URL of the payment provider's HTTP API. Empty: the in-process simulator (development and tests)."""
    merchant_id: str = "yima-guangde"
    merchant_key: str = "dev-merchant-key-not-secret"
    """Shared secret signing our requests to the provider (HMAC-SHA256)."""
    provider_public_key: str = ""
    """base64url raw Ed25519 key the provider signs notifications with. Empty: the in-process simulator's."""
    notify_url: str = ""
    """Where the provider posts notifications. Empty: <base_url>/v1/payments/notify."""

    @classmethod
    def from_settings(cls, settings: Settings) -> OnecardConfig:
        """The provider connection comes from YIMA_PAYMENT_* settings; the rules keep their defaults."""
        if not settings.payment_provider_url:
            return cls()
        return cls(
            payment_provider_url=settings.payment_provider_url,
            merchant_id=settings.payment_merchant_id,
            merchant_key=settings.payment_merchant_key,
            provider_public_key=settings.payment_provider_public_key,
            notify_url=settings.payment_notify_url,
        )
