"""The mini-app programming model: `App` with route and scan decorators, the per-call `Context`, and the
worker-side runtime that serves an App over the bridge.

    app = App()

    @app.get("/books/{id}")
    async def book(ctx: Context, request: Request) -> dict:
        return await ctx.storage.get("books", request.path_params["id"])

Capabilities (`ctx.db`, `ctx.user`, `ctx.storage`, `ctx.credentials`, `ctx.payments`, `ctx.notify`, `ctx.jobs`,
`ctx.terminals`, `ctx.log`) are thin
async proxies: `await ctx.storage.put("k", v)` sends the request (capability, operation, args) to the host and
awaits its reply; several may be in flight at once. A refused capability raises `CapabilityDenied`.

The same runtime serves the app in a production sandbox worker and in the SDK's local simulator.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from yima_sdk._bridge import (
    DEFAULT_MAX_FRAME,
    HOST_DECODER,
    Call,
    CapabilityReply,
    CapabilityRequest,
    Failure,
    FrameError,
    FrameProtocol,
    FrameTooLarge,
    Init,
    JobEvent,
    LayerReport,
    Ready,
    Request,
    Response,
    Result,
    ScanEvent,
    StartFailed,
    encode_frame,
    read_frame_blocking,
)
from yima_sdk.capabilities import (
    OUT_OF_TRANSACTION,
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
from yima_sdk.errors import CapabilityDenied, RouteNotFound, YimaError, error_for_code

__all__ = ["App", "CapabilityProxy", "Context", "Handler", "JobHandler", "ScanHandler", "serve"]

Handler = Callable[["Context", Request], Awaitable[Any]]
ScanHandler = Callable[["Context", ScanEvent], Awaitable[Any]]
JobHandler = Callable[["Context", JobEvent], Awaitable[Any]]

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
        self._scans: dict[str, ScanHandler] = {}
        self._jobs: dict[str, JobHandler] = {}

    def route(self, method: str, path: str) -> Callable[[Handler], Handler]:
        """Register `async def handler(ctx, request)` for METHOD path (path params like `/books/{id}`)."""
        if not path.startswith("/"):
            raise ValueError(f"route path must start with '/': {path!r}")

        def register(handler: Handler) -> Handler:
            self._routes.append(_Route(method.upper(), path, handler))
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

    def __init__(self, runtime: _Runtime, call_id: int, name: str) -> None:
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


class Context:
    """What a handler gets besides the request: who is calling, and the capabilities (the only way out)."""

    def __init__(self, runtime: _Runtime, call_id: int, user_id: str | None, app_id: str) -> None:
        self.call_id = call_id
        self.user_id = user_id
        """The app-scoped pseudonymous id of the resident (None for anonymous calls)."""
        self.app_id = app_id
        declared = runtime.init.capabilities

        def facade(name: str, typed: Any) -> Any:
            # an undeclared capability stays a raw proxy: the host refuses any call to it, whatever the arguments
            proxy = CapabilityProxy(runtime, call_id, name)
            return typed(proxy) if name in declared else proxy

        # the host sent the caller's id with the call (what `user.id` answers): `ctx.user.id()` needs no round trip
        users: Any = CapabilityProxy(runtime, call_id, "user")
        self.user: User = User(users, (user_id,)) if "user" in declared else users
        self.storage: Storage = facade("storage", Storage)
        self.credentials: Credentials = facade("credentials", Credentials)
        self.payments: Payments = facade("payments", Payments)
        self.notify: Notify = facade("notify", Notify)
        self.log: Log = facade("log", Log)
        self.db: Db = facade("db", Db)
        self.jobs: Jobs = facade("jobs", Jobs)
        self.terminals: Terminals = facade("terminals", Terminals)


class _Runtime:
    """Worker side of the bridge: runs calls as tasks, matches capability replies to waiting requests."""

    def __init__(self, app: App, init: Init) -> None:
        self.app = app
        self.init = init
        self.protocol: FrameProtocol | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self.transactions: set[int] = set()
        """Calls with an open `ctx.db.transaction()`."""

    def on_message(self, message: Any) -> None:
        match message:
            case Call():
                task = asyncio.get_running_loop().create_task(self._run(message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            case CapabilityReply(id=req_id):
                future = self._pending.pop(req_id, None)
                if future is None or future.done():
                    return
                if message.ok:
                    future.set_result(message.value)
                else:
                    future.set_exception(error_for_code(message.code, message.message))
            case _:
                self.on_lost(FrameError(f"unexpected message {type(message).__name__}"))

    def on_lost(self, exc: BaseException | None) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def request(
        self, call_id: int, capability: str, operation: str, args: list[Any], kwargs: dict[str, Any]
    ) -> Awaitable[Any]:
        assert self.protocol is not None
        req_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if call_id in self.transactions and capability not in OUT_OF_TRANSACTION:
            future.set_exception(
                CapabilityDenied(
                    f"{capability}.{operation} is refused inside ctx.db.transaction(): call it after the "
                    "block, once the commit succeeded"
                )
            )
            return future
        self._pending[req_id] = future
        try:
            self.protocol.send(
                CapabilityRequest(
                    call_id=call_id,
                    id=req_id,
                    capability=capability,
                    operation=operation,
                    args=args,
                    kwargs=kwargs,
                )
            )
        except (FrameError, TypeError, ConnectionError) as exc:
            del self._pending[req_id]
            future.set_exception(exc)
        return future

    async def _run(self, call: Call) -> None:
        assert self.protocol is not None
        request = call.request
        ctx = Context(self, call.id, request.user_id, self.init.app_id)
        reply: Result | Failure
        try:
            if isinstance(request, Request):
                reply = Result(id=call.id, response=await self.app.handle(ctx, request))
            elif isinstance(request, JobEvent):
                await self.app.handle_job(ctx, request)
                reply = Result(id=call.id)
            else:
                reply = Result(id=call.id, value=await self.app.handle_scan(ctx, request))
        except YimaError as exc:
            reply = Failure(id=call.id, code=exc.code, message=exc.message)
        except RecursionError:
            reply = Failure(id=call.id, code="miniapp.recursion", message="maximum recursion depth exceeded")
        except MemoryError:
            reply = Failure(id=call.id, code="miniapp.memory", message="the app ran out of its memory limit")
        except Exception as exc:
            reply = Failure(id=call.id, code="miniapp.error", message=f"{type(exc).__name__}: {exc}"[:2000])
        self.transactions.discard(call.id)
        try:
            self.protocol.send(reply)
        except FrameTooLarge as exc:
            self.protocol.send(Failure(id=call.id, code="sandbox.response_too_large", message=str(exc)))
        except MemoryError:
            self.protocol.send(
                Failure(id=call.id, code="miniapp.memory", message="response too large to encode")
            )
        except (TypeError, msgspec.EncodeError) as exc:
            self.protocol.send(Failure(id=call.id, code="miniapp.bad_response", message=str(exc)[:2000]))


async def serve(app: App, sock: Any, init: Init, layers: list[LayerReport], started: float) -> None:
    """Serve `app` over a connected bridge socket until the host closes it (worker and simulator alike)."""
    import os

    loop = asyncio.get_running_loop()
    runtime = _Runtime(app, init)
    _, protocol = await loop.create_unix_connection(
        lambda: FrameProtocol(HOST_DECODER, runtime.on_message, runtime.on_lost, init.max_frame), sock=sock
    )
    runtime.protocol = protocol
    protocol.send(Ready(pid=os.getpid(), layers=layers, startup_ms=(time.perf_counter() - started) * 1000))
    await runtime.done


# -- worker processes (sandbox/worker.py in production, yima_sdk/_simworker.py in the simulator) -------------------


def read_init(bridge_fd: int) -> tuple[Any, Init]:
    """The bridge socket and the host's Init frame, the first thing a worker reads."""
    import socket

    sock = socket.socket(fileno=bridge_fd)
    sock.setblocking(True)
    init = read_frame_blocking(sock, HOST_DECODER, DEFAULT_MAX_FRAME)
    if not isinstance(init, Init):
        raise SystemExit("first frame must be Init")
    return sock, init


def import_entry(entry: str) -> App:
    """Import `module:attribute` (sys.path already set up by the caller) and check it is an App."""
    import importlib

    module_name, _, attribute = entry.partition(":")
    app = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(app, App):
        raise TypeError(f"entry {entry!r} is a {type(app).__name__}, not a yima_sdk App")
    return app


def run_worker(
    sock: Any,
    init: Init,
    layers: list[LayerReport],
    loop: asyncio.AbstractEventLoop,
    load: Callable[[], App],
    started: float,
    on_load_error: Callable[[], None] = lambda: None,
) -> None:
    """Load the app and serve it; a load failure is reported to the host as StartFailed (exit status 3).
    Leaves without interpreter teardown (it would only cost time), flushing what the app printed."""
    import contextlib
    import os
    import sys

    try:
        app = load()
    except BaseException as exc:
        on_load_error()
        failure = StartFailed(
            code="miniapp.load_failed", message=f"{type(exc).__name__}: {exc}"[:2000], layers=layers
        )
        sock.sendall(encode_frame(failure, init.max_frame))
        os._exit(3)
    sock.setblocking(False)
    loop.run_until_complete(serve(app, sock, init, layers, started))
    with contextlib.suppress(OSError, ValueError):  # the sandbox may have closed stdout
        sys.stdout.flush()
    os._exit(0)
