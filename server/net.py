"""Who is on the other end of the socket, believing X-Forwarded-For only from configured proxies."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection


def client_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    peer = connection.client.host if connection.client else "unknown"
    trusted = connection.app.state.core.settings.trusted_proxies
    if peer in trusted:
        forwarded = connection.headers.get("x-forwarded-for", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        # The right-most address not added by one of our own proxies is the client.
        for hop in reversed(hops):
            if hop not in trusted:
                return hop
    return peer
