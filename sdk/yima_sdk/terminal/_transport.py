"""How a terminal talks to the server: the `Transport` protocol and its default urllib HTTP implementation."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Protocol

from yima_sdk.terminal._auth import ASSERTION_TYPE, TerminalCredentials
from yima_sdk.trust import KNOWN_REVOCATION_KINDS

__all__ = ["HttpTransport", "Transport", "TransportError"]

TOKEN_PATH = "/v1/terminal/token"  # noqa: S105 - a route, not a secret
PUBLIC_TIME_PATH = "/v1/terminal/public-time"
REVOCATION_KINDS_QUERY = ",".join(sorted(KNOWN_REVOCATION_KINDS))
"""The `kinds` of `GET /v1/revocations`: what this SDK applies, so the server sends it those entries."""


class TransportError(Exception):
    """The server could not be reached or answered with an error; the terminal keeps working offline."""


class _ClockRefused(TransportError):
    """The token endpoint refused the client assertion for its time alone (`terminal.assertion_time`)."""


class Transport(Protocol):
    """The calls a terminal makes. Bodies are raw bytes: the terminal verifies and decodes them."""

    def fetch_trust_list(self, etag: str | None) -> bytes | None:
        """`GET /v1/trust-list` with `If-None-Match: etag`; None when the server answers 304."""
        ...

    def fetch_revocations(self, issuer: int, since: int) -> bytes:
        """`GET /v1/revocations?issuer=I&since=N&kinds=K`: the JSON delta body, holding the kinds this SDK knows
        (`KNOWN_REVOCATION_KINDS`; a server sends a request without `kinds` only the first SDK's kinds)."""
        ...

    def upload_batch(self, body: bytes) -> bytes:
        """`POST /v1/scans/batch` with a JSON body; returns the 200 response body."""
        ...

    def fetch_documents(self, etag: str | None) -> bytes | None:
        """`GET /v1/terminal/documents` with `If-None-Match: etag`: the signed documents of the terminal's scene's
        app (`{"documents": [envelope, ...]}`); None when the server answers 304."""
        ...

    def fetch_lists(self, after: int) -> bytes:
        """`GET /v1/terminal/lists?after=N`: the changes of the lists of the terminal's unit after change N
        (yima_sdk.lists.ListChanges)."""
        ...

    def fetch_server_time(self, nonce: str, terminal_time_ms: int) -> bytes:
        """`GET /v1/terminal/time?nonce=N&terminal_time=T`: the root-signed server time; the server notes T
        (the terminal's own clock) for the operator's terminal list."""
        ...


class HttpTransport:
    """`Transport` over HTTP(S) with urllib, signed in as the terminal itself.

    It obtains its access token with an RFC 7523 client assertion (the terminal's own key and id), renews it
    before it expires by `clock` (a terminal runs all day; a token lives minutes), and once more when the server
    answers 401 (the token was revoked, or the clocks disagree). When the server cannot be reached or refuses the
    terminal, calls raise `TransportError` and the terminal keeps deciding scans offline.

    A terminal's clock may be too far off for its one-minute assertions to pass: its assertions are signed at
    `clock() + clock_offset_s`, the offset its `Terminal` learned from the server's signed time (which this
    transport fetches without a token while it holds none), and a sign-in refused for its time calls
    `clock_sync` (the Terminal's `sync_clock`) and tries once more.
    """

    def __init__(
        self,
        base_url: str,
        credentials: TerminalCredentials,
        *,
        clock: Callable[[], float] = time.time,
        token_endpoint: str | None = None,
        refresh_margin_s: float = 60.0,
        timeout_s: float = 10.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be http(s)")
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.clock = clock
        self.token_endpoint = token_endpoint or self.base_url + TOKEN_PATH
        """The assertions' `aud`: the `token_endpoint` the registration answered (the server's public URL)."""
        self.refresh_margin_s = refresh_margin_s
        self.timeout_s = timeout_s
        self.clock_offset_s = 0.0
        """Added to `clock()` when signing assertions: the server's time minus ours (set by `Terminal`)."""
        self.clock_sync: Callable[[], object] | None = None
        """Called when a sign-in is refused for its time, to correct `clock_offset_s` (set by `Terminal`)."""
        self._token: str | None = None
        self._renew_at = self._expires_at = 0.0
        self._lock = threading.Lock()

    def _send(self, request: urllib.request.Request) -> tuple[int, bytes]:
        """(status, body); raises urllib's HTTPError for an error status, TransportError when unreachable."""
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - scheme checked
                return response.status, response.read()
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, OSError) as exc:
            raise TransportError(f"{request.get_method()} {request.full_url}: {exc}") from exc

    def _access_token(self, *, renew: bool = False) -> str:
        """The held token while it is fresh; otherwise a new one. `renew`: the server refused the held one."""
        try:
            return self._locked_access_token(renew=renew)
        except _ClockRefused:
            if self.clock_sync is None:
                raise
        self.clock_sync()  # outside the lock: the sync may itself need a token when one is held
        return self._locked_access_token(renew=True)

    def _locked_access_token(self, *, renew: bool) -> str:
        with self._lock:
            now = self.clock()
            if renew:
                self._token = None
            elif self._token is not None and now < self._renew_at:
                return self._token
            try:
                token, expires_in = self._sign_in(now)
            except TransportError:
                if self._token is not None and now < self._expires_at:
                    return self._token  # renewing early failed: the held token still has a while to live
                self._token = None
                raise
            # Renewed ahead of expiry, by the margin or at half its life for a short-lived token.
            self._renew_at = now + max(expires_in - self.refresh_margin_s, expires_in / 2)
            self._token, self._expires_at = token, now + expires_in
            return token

    def _sign_in(self, now: float) -> tuple[str, float]:
        """`POST /v1/terminal/token` with a fresh client assertion: (access token, its lifetime in seconds)."""
        form = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.credentials.assertion(
                    self.token_endpoint, now + self.clock_offset_s
                ),
            }
        ).encode()
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self.base_url + TOKEN_PATH,
            data=form,
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        )
        try:
            _, body = self._send(request)
        except urllib.error.HTTPError as exc:
            code = _problem_code(exc)
            refused = _ClockRefused if code == "terminal.assertion_time" else TransportError
            raise refused(f"POST {TOKEN_PATH}: HTTP {exc.code} {code}".rstrip()) from exc
        try:
            answer = json.loads(body)
            return str(answer["access_token"]), float(answer["expires_in"])
        except (ValueError, KeyError, TypeError) as exc:
            raise TransportError(f"POST {TOKEN_PATH}: unreadable token answer") from exc

    def _request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        token = self._access_token()
        for attempt in (1, 2):
            request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
                self.base_url + path,
                data=body,
                method=method,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json", **headers},
            )
            try:
                return self._send(request)
            except urllib.error.HTTPError as exc:
                if exc.code == 304:
                    return 304, b""
                if exc.code == 401 and attempt == 1:
                    token = self._access_token(renew=True)  # revoked, or expired by the server's clock
                    continue
                raise TransportError(
                    f"{method} {path}: HTTP {exc.code} {_problem_code(exc)}".rstrip()
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def fetch_trust_list(self, etag: str | None) -> bytes | None:
        status, body = self._request("GET", "/v1/trust-list", None, {"If-None-Match": etag} if etag else {})
        return None if status == 304 else body

    def fetch_documents(self, etag: str | None) -> bytes | None:
        status, body = self._request(
            "GET", "/v1/terminal/documents", None, {"If-None-Match": etag} if etag else {}
        )
        return None if status == 304 else body

    def fetch_lists(self, after: int) -> bytes:
        return self._request(
            "GET", f"/v1/terminal/lists?{urllib.parse.urlencode({'after': after})}", None, {}
        )[1]

    def fetch_revocations(self, issuer: int, since: int) -> bytes:
        query = urllib.parse.urlencode({"issuer": issuer, "since": since, "kinds": REVOCATION_KINDS_QUERY})
        return self._request("GET", f"/v1/revocations?{query}", None, {})[1]

    def upload_batch(self, body: bytes) -> bytes:
        return self._request("POST", "/v1/scans/batch", body, {"Content-Type": "application/json"})[1]

    def fetch_server_time(self, nonce: str, terminal_time_ms: int) -> bytes:
        try:
            self._locked_access_token(renew=False)  # signed in, the server notes our clock for the operator
        except _ClockRefused:
            # Our clock is too far off to sign in: the same signed time without a token (the server notes our
            # clock at the next sync, signed in with the corrected time).
            return self._public_get(f"{PUBLIC_TIME_PATH}?{urllib.parse.urlencode({'nonce': nonce})}")
        query = urllib.parse.urlencode({"nonce": nonce, "terminal_time": terminal_time_ms})
        return self._request("GET", f"/v1/terminal/time?{query}", None, {})[1]

    def _public_get(self, path: str) -> bytes:
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self.base_url + path, method="GET", headers={"Accept": "application/json"}
        )
        try:
            return self._send(request)[1]
        except urllib.error.HTTPError as exc:
            raise TransportError(f"GET {path}: HTTP {exc.code} {_problem_code(exc)}".rstrip()) from exc

    def scan_online(
        self, payload: str, scanned_at_ms: int, *, stop: str | None = None, tap: str = "on"
    ) -> bytes:
        """`POST /v1/scans`: the server decides this scan now; returns its JSON answer (docs/scan.md). `stop` and
        `tap` as `Terminal.scan`'s: sent only when given, so an older server reads the scan as before."""
        scan: dict[str, object] = {"payload": payload, "scanned_at": scanned_at_ms}
        if stop is not None:
            scan["stop"] = stop
        if tap != "on":
            scan["tap"] = tap
        body = json.dumps(scan).encode()
        return self._request("POST", "/v1/scans", body, {"Content-Type": "application/json"})[1]


def _problem_code(exc: urllib.error.HTTPError) -> str:
    """The stable code of a problem+json answer (`terminal.disabled`...), or '' when there is none."""
    try:
        code = json.loads(exc.read()).get("code")
    except (ValueError, AttributeError, OSError):
        return ""
    return code if isinstance(code, str) else ""
