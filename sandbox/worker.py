"""Sandbox worker entry point: `python -I -m sandbox.worker <bridge-fd>`, started by the host, one per process.

It reads its Init frame, applies the requested OS layers to itself in a fixed order, imports the mini-app
(after every layer is in force, so even import-time code is confined), reports each layer over the bridge
in its Ready message and then serves calls with the same yima_sdk runtime the local simulator uses.
"""

from __future__ import annotations

import time

_STARTED = time.perf_counter()

import asyncio  # noqa: E402  (the start time above must include these imports)
import importlib  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402

from yima_sdk._app import App, serve  # noqa: E402
from yima_sdk._bridge import (  # noqa: E402
    DEFAULT_MAX_FRAME,
    HOST_DECODER,
    Init,
    LayerReport,
    StartFailed,
    encode_frame,
    read_frame_blocking,
)

from sandbox import limits  # noqa: E402


def apply_early_layers(init: Init, bridge_fd: int) -> dict[str, LayerReport]:
    """Descriptors and environment: before the event loop opens descriptors of its own."""
    wanted = set(init.layers)
    return {
        "fds": limits.close_inherited_fds(bridge_fd) if "fds" in wanted else limits.skipped("fds"),
        "env": limits.scrub_environment() if "env" in wanted else limits.skipped("env"),
    }


def apply_layers(init: Init, reports: dict[str, LayerReport]) -> list[LayerReport]:
    """Apply the rest of the layers named in `init.layers`, in the only order that works; report every layer."""
    wanted = set(init.layers)
    reports["netns"] = limits.enter_network_namespace() if "netns" in wanted else limits.skipped("netns")
    readable = limits.readable_paths(init.app_folder)
    exposed = ""
    if "uid" in wanted and os.geteuid() == 0:
        try:
            exposed = limits.expose_readable_paths(readable, init.uid, init.gid)
        except OSError as exc:
            exposed = f"; could not expose interpreter paths: {exc}"
    if "rlimits" in wanted:
        reports["rlimits"] = limits.apply_rlimits(
            init.memory_mb, init.cpu_seconds, init.open_files, init.processes
        )
    else:
        reports["rlimits"] = limits.skipped("rlimits")
    if "uid" in wanted:
        uid = limits.drop_privileges(init.uid, init.gid)
        reports["uid"] = LayerReport(name="uid", in_force=uid.in_force, detail=uid.detail + exposed)
    else:
        reports["uid"] = limits.skipped("uid")
    reports["landlock"] = (
        limits.apply_landlock(readable) if "landlock" in wanted else limits.skipped("landlock")
    )
    reports["seccomp"] = limits.apply_seccomp() if "seccomp" in wanted else limits.skipped("seccomp")
    return [reports[name] for name in limits.LAYERS]


def load_app(init: Init) -> App:
    """Import `module:attribute` from the app folder, with only the app folder and the stdlib on sys.path."""
    module_name, _, attribute = init.entry.partition(":")
    sys.path[:] = [init.app_folder, *limits.python_paths()]
    module = importlib.import_module(module_name)
    app = getattr(module, attribute)
    if not isinstance(app, App):
        raise TypeError(f"entry {init.entry!r} is a {type(app).__name__}, not a yima_sdk App")
    return app


def main() -> None:
    bridge_fd = int(sys.argv[1])
    sock = socket.socket(fileno=bridge_fd)
    sock.setblocking(True)
    init: Init = read_frame_blocking(sock, HOST_DECODER, DEFAULT_MAX_FRAME)
    if not isinstance(init, Init):
        raise SystemExit("first frame must be Init")
    sys.dont_write_bytecode = True  # the app folder is read-only: do not even try to write .pyc files
    early = apply_early_layers(init, bridge_fd)
    # the event loop makes its self-pipe socketpair now, before seccomp forbids new sockets
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    layers = apply_layers(init, early)
    try:
        app = load_app(init)
    except BaseException as exc:
        failure = StartFailed(
            code="miniapp.load_failed", message=f"{type(exc).__name__}: {exc}"[:2000], layers=layers
        )
        sock.sendall(encode_frame(failure, init.max_frame))
        os._exit(3)
    sock.setblocking(False)
    loop.run_until_complete(serve(app, sock, init, layers, _STARTED))
    os._exit(0)  # skip interpreter teardown: nothing to flush, and it would only cost time


__all__ = ["apply_early_layers", "apply_layers", "load_app", "main"]

if __name__ == "__main__":
    main()
