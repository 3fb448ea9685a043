"""Request ids, structured JSON logs without personal data, and Prometheus metrics."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Histogram

from server.ids import request_id

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
# Defence in depth: even if a message slips a phone or ID number in, it leaves the process masked.
_PII_RE = re.compile(r"(?<!\d)(1\d{10}|\d{17}[\dXx])(?!\d)")


def client_disconnected(scope: Scope) -> bool:
    """The client hung up before the whole request was read (uvicorn sent `http.disconnect`)."""
    return bool(scope.get("state", {}).get("client_disconnected"))


def request_id_of(scope: Scope) -> str | None:
    return scope.get("state", {}).get("request_id") or _request_id.get()


def scrub(text: str) -> str:
    return _PII_RE.sub(lambda m: m.group(0)[:3] + "*" * (len(m.group(0)) - 3), text)


class JsonFormatter(logging.Formatter):
    _SKIP = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        rid = _request_id.get()
        if rid:
            entry["request_id"] = rid
        for key, value in vars(record).items():
            if key not in self._SKIP and not key.startswith("_"):
                entry[key] = scrub(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log prints full query strings (phones in ?phone=...); our middleware logs requests instead.
    logging.getLogger("uvicorn.access").disabled = True


class Metrics:
    """One registry per app instance, so tests and several apps in one process do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "yima_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "yima_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.events = Counter("yima_events", "Domain events", ["event", "outcome"], registry=self.registry)


class OutageLog:
    """While a dependency fails, one line per interval with a count, not one line per failed request.

    The first failure after a quiet interval is logged at once (the operator learns of the outage when it
    starts); later ones are counted, and the count is logged with the first failure of the next interval.
    """

    def __init__(
        self, logger: logging.Logger, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._log = logger
        self._interval_s = interval_s
        self._clock = clock
        self._since: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def failed(self, dependency: str, error: str) -> None:
        now = self._clock()
        since = self._since.get(dependency)
        if since is not None and now - since < self._interval_s:
            self._counts[dependency] += 1
            return
        earlier = self._counts.get(dependency, 0) if since is not None else 0
        self._log.warning(
            f"{dependency} unavailable",
            extra={
                "dependency": dependency,
                "error": error,
                "failures_since_last_line": earlier + 1,
                "interval_s": self._interval_s,
            },
        )
        self._since[dependency] = now
        self._counts[dependency] = 0


outage_log = OutageLog(logging.getLogger("yima.outage"))
"""The process's one outage log: every worker reports its own count."""

_access = logging.getLogger("yima.access")


def request_context_middleware(
    metrics: Metrics, on_error: Callable[[Any, Exception], Any] | None = None
) -> Any:
    """ASGI middleware factory: assigns a request id, logs one line per request, records metrics."""

    # Each labelled series once per (route, status): prometheus_client's labels() looks it up under a lock.
    counters: dict[tuple[str, str, int], Any] = {}
    histograms: dict[tuple[str, str], Any] = {}

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            incoming = _header(scope, b"x-request-id")
            rid = incoming if incoming and _REQUEST_ID_RE.match(incoming) else request_id()
            scope.setdefault("state", {})["request_id"] = rid
            token = _request_id.set(rid)
            status = 500
            started = time.perf_counter()

            async def receive_watching() -> ReceiveMessage:
                message = await receive()
                if message["type"] == "http.disconnect":
                    # The error handler reads this: whatever fails after the client left is not our bug.
                    scope["state"]["client_disconnected"] = True
                return message

            async def send_with_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
                await send(message)

            try:
                await app(scope, receive_watching, send_with_id)
            except Exception as exc:
                # Raised by a middleware after us (access control): render it here, so the answer carries the
                # request id header and is counted with its real status, like errors from handlers.
                if status != 500 or on_error is None:
                    raise
                from litestar import Request

                request: Request[Any, Any, Any] = Request(scope, receive)
                response = on_error(request, exc).to_asgi_response(None, request)
                await response(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                route = scope.get("path_template") or "unmatched"
                method = str(scope.get("method", ""))
                counter = counters.get((method, route, status))
                if counter is None:
                    counter = counters[(method, route, status)] = metrics.requests.labels(
                        method, route, str(status)
                    )
                counter.inc()
                histogram = histograms.get((method, route))
                if histogram is None:
                    histogram = histograms[(method, route)] = metrics.latency.labels(method, route)
                histogram.observe(elapsed)
                _access.info(
                    "request",
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "ms": round(elapsed * 1e3, 2),
                    },
                )
                _request_id.reset(token)

        return middleware

    return factory


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None
