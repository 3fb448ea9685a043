"""Sandbox worker entry point: `python -I -m sandbox.worker <bridge-fd>`, started by the host, one per process.

It reads its Init frame, applies the requested OS layers to itself in a fixed order, imports the mini-app
(after every layer is in force, so even import-time code is confined), reports each layer over the bridge
in its Ready message and then serves calls with the same yima_sdk runtime the local simulator uses, on uvloop
(the server's own loop) where it is installed.
"""

from __future__ import annotations

import time

_STARTED = time.perf_counter()

import asyncio  # noqa: E402  (the start time above must include these imports)
import signal  # noqa: E402
import sys  # noqa: E402

from yima_sdk._app import App  # noqa: E402
from yima_sdk._bridge import Init  # noqa: E402
from yima_sdk._isolation._seccomp import refuse_io_uring  # noqa: E402
from yima_sdk._isolation.source_only import source_only_imports  # noqa: E402
from yima_sdk._worker import import_entry, read_init, run_worker  # noqa: E402

from sandbox import limits  # noqa: E402
from sandbox.limits import apply_early_layers, apply_layers  # noqa: E402


def load_app(init: Init) -> App:
    """Import `module:attribute` from the app folder, with only the app folder and the stdlib on sys.path."""
    sys.path[:] = [init.app_folder, *limits.python_paths()]
    source_only_imports(init.app_folder)
    return import_entry(init.entry)


def event_loop(init: Init) -> asyncio.AbstractEventLoop:
    """uvloop where installed, else asyncio's loop. A call costs the worker about a third less CPU on uvloop
    (the bridge's reads, writes and wake-ups in C; docs/benchmarks.md)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    if "seccomp" in init.layers:
        try:
            refuse_io_uring()  # else libuv's io_uring, set up now, aborts the process under the allow-list
        except OSError:
            return asyncio.new_event_loop()  # no libseccomp: the seccomp layer reports it
    return uvloop.new_event_loop()


def main() -> None:
    # Ctrl-C at the terminal signals the whole foreground process group, workers included. A worker killed by it
    # while the server shut down was reported lost and replaced; the host stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    bridge_fd = int(sys.argv[1])
    sock, init = read_init(bridge_fd)
    sys.dont_write_bytecode = True  # as -B: the app folder is read-only, and a .pyc there must never exist
    early = apply_early_layers(init, bridge_fd)
    # the event loop makes its descriptors (epoll, self-pipe) now, before seccomp forbids new ones
    loop = event_loop(init)
    asyncio.set_event_loop(loop)
    run_worker(sock, init, lambda: apply_layers(init, early), loop, lambda: load_app(init), _STARTED)


__all__ = ["apply_early_layers", "apply_layers", "event_loop", "load_app", "main", "source_only_imports"]

if __name__ == "__main__":
    main()
