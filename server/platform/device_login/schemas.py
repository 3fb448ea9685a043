"""Wire types of the developer device login (field names as in RFC 8628 §3.2, so generic clients understand)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from server.wire import Inbound, Outbound


class DeviceAuthorization(Outbound):
    device_code: str
    """The CLI's secret: poll `/v1/developer/device/token` with it. Never shown to the developer."""
    user_code: str
    """Show this to the developer, who confirms it while signed in (`XXXX-XXXX`)."""
    verification_uri: str
    """Where the developer confirms the user code (the API route; the console will offer a page)."""
    expires_in: int
    """Seconds until both codes expire."""
    interval: int
    """Minimum seconds between polls; polling faster answers 429 `device.slow_down`."""


class UserCodeConfirmation(Inbound):
    user_code: Annotated[
        str, msgspec.Meta(pattern=r"^[A-Za-z]{4}[- ]?[A-Za-z]{4}$", description="As shown: XXXX-XXXX")
    ]


class DeviceTokenRequest(Inbound):
    device_code: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
