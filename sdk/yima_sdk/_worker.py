"""The worker side of the bridge: `Runtime` runs an App's calls as tasks and matches capability replies to the
requests waiting for them; `serve`, `read_init`, `import_entry` and `run_worker` start a worker process
(sandbox/worker.py in production, yima_sdk/_simworker.py in the simulator). The programming model the app
sees (`App`, `Context`) is `yima_sdk._app`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from yima_sdk._app import App, Context
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
    Result,
    StartFailed,
    encode_frame,
    read_frame_blocking,
)
from yima_sdk.capabilities import OUT_OF_TRANSACTION
from yima_sdk.errors import CapabilityDenied, YimaError, error_for_code

__all__ = ["Runtime", "import_entry", "read_init", "run_worker", "serve"]


class Runtime:
    """Worker side of the bridge: runs calls as tasks, matches capability replies to waiting requests."""

    def __init__(self, app: App, init: Init) -> None:
        self.app = app
        self.init = init
        self.protocol: FrameProtocol | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._tasks: dict[int, asyncio.Task[None]] = {}
        """The running calls by id: the loop holds its tasks only weakly."""
        self.transactions: set[int] = set()
        """Calls with an open `ctx.db.transaction()`."""

    def on_message(self, message: Any) -> None:
        match message:
            case Call():
                self._tasks[message.id] = asyncio.get_running_loop().create_task(self._run(message))
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
        # the call forgets its own task as it ends: a done callback would cost the loop one more turn per call
        try:
            await self._answer(call)
        finally:
            self._tasks.pop(call.id, None)

    async def _answer(self, call: Call) -> None:
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
    runtime = Runtime(app, init)
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
    apply_layers: Callable[[], list[LayerReport]],
    loop: asyncio.AbstractEventLoop,
    load: Callable[[], App],
    started: float,
    on_load_error: Callable[[], None] = lambda: None,
) -> None:
    """Apply the remaining isolation layers, load the app and serve it, all in `loop` as it runs: a loop may
    open descriptors as it starts running (uvloop makes its signal self-pipe then), which the seccomp layer
    forbids afterwards. A load failure is reported to the host as StartFailed (exit status 3). Leaves without
    interpreter teardown (it would only cost time), flushing what the app printed."""
    import contextlib
    import os
    import sys

    loop.run_until_complete(_start(sock, init, apply_layers, load, started, on_load_error))
    with contextlib.suppress(OSError, ValueError):  # the sandbox may have closed stdout
        sys.stdout.flush()
    os._exit(0)


async def _start(
    sock: Any,
    init: Init,
    apply_layers: Callable[[], list[LayerReport]],
    load: Callable[[], App],
    started: float,
    on_load_error: Callable[[], None],
) -> None:
    import os

    layers = apply_layers()
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
    await serve(app, sock, init, layers, started)
