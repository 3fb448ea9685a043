"""The mini-app programming model: `App` with route and scan decorators, and the per-call `Context`.

    app = App()

    @app.get("/books/{id}")
    async def book(ctx: Context, request: Request) -> dict:
        return await ctx.storage.get("books", request.path_params["id"])

Capabilities (`ctx.db`, `ctx.user`, `ctx.storage`, `ctx.credentials`, `ctx.payments`, `ctx.notify`, `ctx.jobs`,
`ctx.terminals`, `ctx.log`) are thin
async proxies: `await ctx.storage.put("k", v)` sends the request (capability, operation, args) to the host and
awaits its reply; several may be in flight at once. A refused capability raises `CapabilityDenied`.

The same runtime (`yima_sdk._worker`) serves the app in a production sandbox worker and in the SDK's local
simulator.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import msgspec

from yima_sdk._bridge import JobEvent, Request, Response, ScanEvent
from yima_sdk.capabilities import (
    Credentials,
    Db,
    Jobs,
    Log,
    Notify,
    Payments,
    Storage,
    Terminals,
    User,
)
from yima_sdk.errors import CapabilityDenied, RouteNotFound

if TYPE_CHECKING:
    from yima_sdk._worker import Runtime

__all__ = ["App", "CapabilityProxy", "Context", "Handler", "JobHandler", "ScanHandler"]

Handler = Callable[["Context", Request], Awaitable[Any]]
ScanHandler = Callable[["Context", ScanEvent], Awaitable[Any]]
JobHandler = Callable[["Context", JobEvent], Awaitable[Any]]

T = TypeVar("T")
_PARAM = re.compile(r"\{([A-Za-z_]\w*)\}")
_json = msgspec.json.Encoder()


class _Route:
    __slots__ = ("handler", "method", "pattern", "template")

    def __init__(self, method: str, template: str, handler: Handler) -> None:
        self.method = method
        self.template = template
        self.handler = handler
        parts = _PARAM.split(template)
        # split() alternates literal text and parameter names
        regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
        self.pattern = re.compile(f"^{regex}$")


class App:
    """A mini-app: HTTP routes and scan handlers. The manifest's `entry` points at an instance of this."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []
        self._exact: dict[tuple[str, str], _Route] = {}
        """(method, path) -> a route without parameters that is the first to answer that path: one look-up
        instead of trying every route's pattern in turn, with the same winner."""
        self._scans: dict[str, ScanHandler] = {}
        self._jobs: dict[str, JobHandler] = {}

    def route(self, method: str, path: str) -> Callable[[Handler], Handler]:
        """Register `async def handler(ctx, request)` for METHOD path (path params like `/books/{id}`)."""
        if not path.startswith("/"):
            raise ValueError(f"route path must start with '/': {path!r}")

        def register(handler: Handler) -> Handler:
            route = _Route(method.upper(), path, handler)
            if _PARAM.search(path) is None and not any(
                earlier.method == route.method and earlier.pattern.match(path) for earlier in self._routes
            ):
                self._exact[(route.method, path)] = route
            self._routes.append(route)
            return handler

        return register

    def get(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("GET", path)

    def post(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("POST", path)

    def put(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("PUT", path)

    def delete(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path)

    def on_scan(self, scene_kind: str) -> Callable[[ScanHandler], ScanHandler]:
        """Register `async def handler(ctx, event)` for scans at scenes of this kind (e.g. "clinic")."""

        def register(handler: ScanHandler) -> ScanHandler:
            self._scans[scene_kind] = handler
            return handler

        return register

    def job(self, name: str) -> Callable[[JobHandler], JobHandler]:
        """Register `async def handler(ctx, job)` for job `name`: the firings of its `[jobs]` schedule and the
        one-shot jobs `ctx.jobs.schedule(at, name, data)` asks for. A handler that raises is retried."""

        def register(handler: JobHandler) -> JobHandler:
            self._jobs[name] = handler
            return handler

        return register

    async def handle(self, ctx: Context, request: Request) -> Response:
        """Route one HTTP request; 404/405 are answers, not errors."""
        exact = self._exact.get((request.method.upper(), request.path))
        if exact is not None:
            return _as_response(await exact.handler(ctx, msgspec.structs.replace(request, path_params={})))
        allowed: list[str] = []
        for route in self._routes:
            found = route.pattern.match(request.path)
            if found is None:
                continue
            if route.method != request.method.upper():
                allowed.append(route.method)
                continue
            routed = msgspec.structs.replace(request, path_params=found.groupdict())
            return _as_response(await route.handler(ctx, routed))
        if allowed:
            return Response(status=405, headers={"allow": ", ".join(allowed)}, body=b"")
        return Response.json(
            {"code": RouteNotFound.code, "detail": f"no route for {request.path}"}, status=404
        )

    async def handle_scan(self, ctx: Context, event: ScanEvent) -> Any:
        handler = self._scans.get(event.scene_kind)
        if handler is None:
            raise RouteNotFound(f"no scan handler for scene kind {event.scene_kind!r}")
        return await handler(ctx, event)

    async def handle_job(self, ctx: Context, event: JobEvent) -> None:
        handler = self._jobs.get(event.name)
        if handler is None:
            raise RouteNotFound(f"no job handler for {event.name!r} (@app.job({event.name!r}))")
        await handler(ctx, event)


def _as_response(value: Any) -> Response:
    if isinstance(value, Response):
        return value
    if value is None:
        return Response(status=204)
    if isinstance(value, bytes):
        return Response(headers={"content-type": "application/octet-stream"}, body=value)
    if isinstance(value, str):
        return Response(headers={"content-type": "text/plain; charset=utf-8"}, body=value.encode())
    return Response(headers={"content-type": "application/json"}, body=_json.encode(value))


class CapabilityProxy:
    """`ctx.<capability>.<operation>(*args, **kwargs)` -> awaitable reply from the host."""

    __slots__ = ("_call_id", "_name", "_runtime")

    def __init__(self, runtime: Runtime, call_id: int, name: str) -> None:
        self._runtime = runtime
        self._call_id = call_id
        self._name = name

    def __getattr__(self, operation: str) -> Callable[..., Awaitable[Any]]:
        if operation.startswith("_"):
            raise AttributeError(operation)

        def invoke(*args: Any, **kwargs: Any) -> Awaitable[Any]:
            return self._runtime.request(self._call_id, self._name, operation, list(args), kwargs)

        return invoke

    def _enter_transaction(self) -> None:
        """A `ctx.db.transaction()` of this call opened: until it ends, calls out of the sandbox other than
        db, storage, user and log are refused (they could not be undone if the commit fails)."""
        if self._call_id in self._runtime.transactions:
            raise CapabilityDenied("a ctx.db.transaction() is already open in this call")
        self._runtime.transactions.add(self._call_id)

    def _leave_transaction(self) -> None:
        self._runtime.transactions.discard(self._call_id)


class _Capability(Generic[T]):
    """`ctx.<capability>`: its facade is made the first time the handler uses it, then kept on the context (a
    handler uses one or two of the nine; making all nine per call was a measurable part of a call's CPU)."""

    __slots__ = ("_make", "_name")

    def __init__(self, make: Callable[[Context, str], T]) -> None:
        self._make = make
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, ctx: None, owner: type) -> _Capability[T]: ...
    @overload
    def __get__(self, ctx: Context, owner: type) -> T: ...
    def __get__(self, ctx: Context | None, owner: type) -> T | _Capability[T]:
        if ctx is None:
            return self
        made = ctx.__dict__[self._name] = self._make(ctx, self._name)
        return made


def _facade(typed: Callable[[Any], T]) -> Callable[[Context, str], T]:
    def make(ctx: Context, name: str) -> T:
        # an undeclared capability stays a raw proxy: the host refuses any call to it, whatever the arguments
        proxy: Any = CapabilityProxy(ctx._runtime, ctx.call_id, name)
        return typed(proxy) if name in ctx._runtime.init.capabilities else proxy

    return make


def _user(ctx: Context, name: str) -> User:
    # the host sent the caller's id with the call (what `user.id` answers): `ctx.user.id()` needs no round trip
    proxy: Any = CapabilityProxy(ctx._runtime, ctx.call_id, name)
    return User(proxy, (ctx.user_id,)) if name in ctx._runtime.init.capabilities else proxy


class Context:
    """What a handler gets besides the request: who is calling, and the capabilities (the only way out)."""

    user = _Capability(_user)
    storage = _Capability(_facade(Storage))
    credentials = _Capability(_facade(Credentials))
    payments = _Capability(_facade(Payments))
    notify = _Capability(_facade(Notify))
    log = _Capability(_facade(Log))
    db = _Capability(_facade(Db))
    jobs = _Capability(_facade(Jobs))
    terminals = _Capability(_facade(Terminals))

    def __init__(self, runtime: Runtime, call_id: int, user_id: str | None, app_id: str) -> None:
        self.call_id = call_id
        self.user_id = user_id
        """The app-scoped pseudonymous id of the resident (None for anonymous calls)."""
        self.app_id = app_id
        self._runtime = runtime
