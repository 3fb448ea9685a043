"""How a terminal talks to the server: the `Transport` protocol and its default urllib HTTP implementation."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from typing import Protocol

__all__ = ["HttpTransport", "Transport", "TransportError"]


class TransportError(Exception):
    """The server could not be reached or answered with an error; the terminal keeps working offline."""


class Transport(Protocol):
    """The three calls a terminal makes. Bodies are raw bytes: the terminal verifies and decodes them."""

    def fetch_trust_list(self, etag: str | None) -> bytes | None:
        """`GET /v1/trust-list` with `If-None-Match: etag`; None when the server answers 304."""
        ...

    def fetch_revocations(self, issuer: int, since: int) -> bytes:
        """`GET /v1/revocations?issuer=I&since=N`: the JSON delta body."""
        ...

    def upload_batch(self, body: bytes) -> bytes:
        """`POST /v1/scans/batch` with a JSON body; returns the 200 response body."""
        ...


class HttpTransport:
    """`Transport` over HTTP(S) with urllib and a bearer token (the terminal access token)."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = 10.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be http(s)")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def _request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self.base_url + path,
            data=body,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json", **headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 304:
                return 304, b""
            raise TransportError(f"{method} {path}: HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise TransportError(f"{method} {path}: {exc}") from exc

    def fetch_trust_list(self, etag: str | None) -> bytes | None:
        status, body = self._request("GET", "/v1/trust-list", None, {"If-None-Match": etag} if etag else {})
        return None if status == 304 else body

    def fetch_revocations(self, issuer: int, since: int) -> bytes:
        query = urllib.parse.urlencode({"issuer": issuer, "since": since})
        return self._request("GET", f"/v1/revocations?{query}", None, {})[1]

    def upload_batch(self, body: bytes) -> bytes:
        return self._request("POST", "/v1/scans/batch", body, {"Content-Type": "application/json"})[1]
