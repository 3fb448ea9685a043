"""Simulator worker entry point: `python -I -m yima_sdk._simworker <bridge-fd>`, one per simulated app.

The same steps as the production sandbox worker (read Init, import the app, Ready with layer reports, serve
calls with the yima_sdk runtime over the bridge), minus the OS layers: it reports each one as not in force
instead of applying it, so the developer sees what production adds.
"""

from __future__ import annotations

import time

_STARTED = time.perf_counter()

import asyncio  # noqa: E402  (the start time above must include these imports)
import io  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402

from yima_sdk._app import App, import_entry, read_init, run_worker  # noqa: E402
from yima_sdk._bridge import Init, LayerReport  # noqa: E402

__all__ = ["LAYERS", "load_app", "main", "observe_layers"]

LAYERS: tuple[str, ...] = ("uid", "netns", "landlock", "seccomp", "rlimits", "env", "fds")
"""The production sandbox's layers, by the names its reports use (sandbox/limits.py)."""

_ENV_ALLOWED = frozenset(
    {"LANG", "LC_ALL", "TZ", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED", "MALLOC_ARENA_MAX"}
)
_NOT_APPLIED = "not applied by the local simulator; the production sandbox applies and requires it"


def observe_layers(bridge_fd: int) -> list[LayerReport]:
    """What isolation this process really has: the host gave it a scrubbed environment and no extra
    descriptors; the kernel layers (uid, netns, Landlock, seccomp, rlimits) are missing."""
    reports = {name: LayerReport(name=name, in_force=False, detail=_NOT_APPLIED) for name in LAYERS}
    extra_env = sorted(set(os.environ) - _ENV_ALLOWED)
    reports["env"] = LayerReport(
        name="env",
        in_force=not extra_env,
        detail="environment scrubbed by the simulator" if not extra_env else f"extra variables: {extra_env}",
    )
    open_fds = {int(fd) for fd in os.listdir("/proc/self/fd")} - {0, 1, 2, bridge_fd}
    open_fds = {fd for fd in open_fds if _is_open(fd)}  # drops the descriptor listdir itself used
    reports["fds"] = LayerReport(
        name="fds",
        in_force=False,
        detail=(
            "no inherited descriptors beyond the bridge, but stdout/stderr stay on your terminal for print()"
            if not open_fds
            else f"inherited descriptors {sorted(open_fds)}"
        ),
    )
    return [reports[name] for name in LAYERS]


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def load_app(init: Init) -> App:
    """Import `module:attribute` with the app folder first on sys.path."""
    sys.path.insert(0, init.app_folder)
    return import_entry(init.entry)


def main() -> None:
    bridge_fd = int(sys.argv[1])
    sock, init = read_init(bridge_fd)
    sys.dont_write_bytecode = True  # production app folders are read-only: behave the same here
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # the app's print() shows up as it happens
    layers = observe_layers(bridge_fd)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # traceback: the developer's terminal shows where the import failed
    run_worker(sock, init, layers, loop, lambda: load_app(init), _STARTED, traceback.print_exc)


if __name__ == "__main__":
    main()
