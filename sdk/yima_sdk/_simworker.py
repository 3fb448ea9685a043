"""Simulator worker entry point: `python -I -B -m yima_sdk._simworker <bridge-fd>`, one per simulated app.

The same steps as the production sandbox worker (read Init, apply the OS layers, import the app from its .py
sources only, Ready with
layer reports, serve calls with the yima_sdk runtime over the bridge). The layers are production's own
(`yima_sdk._isolation`), each applied where the machine allows: the simulator asks for all of them on Linux
and none elsewhere; as root the app runs under its own unprivileged uid in a network namespace like in
production, unprivileged the kernel layers that need no privilege (Landlock, seccomp, rlimits) still hold.
Two differences, both for the developer: stdout/stderr stay on the terminal so print() shows, and the
file-size limit is lifted since that terminal may be a file.
"""

from __future__ import annotations

import time

_STARTED = time.perf_counter()

import asyncio  # noqa: E402  (the start time above must include these imports)
import io  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402

from yima_sdk._app import App  # noqa: E402
from yima_sdk._bridge import Init, LayerReport  # noqa: E402
from yima_sdk._isolation import apply_early_layers, apply_layers  # noqa: E402
from yima_sdk._isolation.limits import LAYERS, python_paths  # noqa: E402
from yima_sdk._isolation.source_only import source_only_imports  # noqa: E402
from yima_sdk._worker import import_entry, read_init, run_worker  # noqa: E402

__all__ = ["LAYERS", "load_app", "main"]


def load_app(init: Init) -> App:
    """Import `module:attribute` as production does: only the app folder and the stdlib on sys.path, the app's
    modules from their .py sources alone."""
    if not os.access(init.app_folder, os.R_OK | os.X_OK):
        # as root the app runs under its own uid, like in production: a 0700 folder must be opened up
        raise PermissionError(
            f"the app's uid {os.getuid()} cannot read {init.app_folder} (make it world-readable)"
        )
    sys.path[:] = [init.app_folder, *python_paths()]
    source_only_imports(init.app_folder)  # as in production: shipped bytecode never runs
    return import_entry(init.entry)


def _unsupported() -> list[LayerReport]:
    detail = f"not available on {sys.platform}; the production sandbox (Linux) applies and requires it"
    return [LayerReport(name=name, in_force=False, detail=detail) for name in LAYERS]


def main() -> None:
    bridge_fd = int(sys.argv[1])
    sock, init = read_init(bridge_fd)
    sys.dont_write_bytecode = True  # production app folders are read-only: behave the same here
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # the app's print() shows up as it happens
    early = apply_early_layers(init, bridge_fd, keep_output=True) if init.layers else {}
    # the event loop makes its self-pipe socketpair now, before seccomp forbids new sockets
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def layers() -> list[LayerReport]:
        return apply_layers(init, early, file_size=resource.RLIM_INFINITY) if init.layers else _unsupported()

    # traceback: the developer's terminal shows where the import failed
    run_worker(sock, init, layers, loop, lambda: load_app(init), _STARTED, traceback.print_exc)


if __name__ == "__main__":
    main()
