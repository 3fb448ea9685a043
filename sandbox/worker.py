"""Sandbox worker entry point: `python -I -m sandbox.worker <bridge-fd>`, started by the host, one per process.

It reads its Init frame, applies the requested OS layers to itself in a fixed order, imports the mini-app
(after every layer is in force, so even import-time code is confined), reports each layer over the bridge
in its Ready message and then serves calls with the same yima_sdk runtime the local simulator uses.
"""

from __future__ import annotations

import time

_STARTED = time.perf_counter()

import asyncio  # noqa: E402  (the start time above must include these imports)
import importlib.abc  # noqa: E402
import importlib.machinery  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from types import CodeType  # noqa: E402

from yima_sdk._app import App, import_entry, read_init, run_worker  # noqa: E402
from yima_sdk._bridge import Init  # noqa: E402

from sandbox import limits  # noqa: E402
from sandbox.limits import apply_early_layers, apply_layers  # noqa: E402


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compiles the module's source every time; never reads (or writes) a cached .pyc."""

    def get_code(self, fullname: str) -> CodeType:
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)  # type: ignore[no-any-return]


def source_only_imports(app_folder: str) -> None:
    """Modules beneath the app folder are imported from their reviewed .py source and nothing else.

    The stock finder would prefer `__pycache__/<module>.cpython-311.pyc` (an unchecked-hash one is not even
    compared with the source) and would load a sourceless `<module>.pyc`, so shipped bytecode could run in
    place of the reviewed code. Other paths (the stdlib) keep the stock finders and their cached bytecode."""
    folder = os.path.realpath(app_folder)
    source_only = importlib.machinery.FileFinder.path_hook(
        (_SourceOnlyLoader, importlib.machinery.SOURCE_SUFFIXES)
    )

    def hook(path: str) -> importlib.abc.PathEntryFinder:
        real = os.path.realpath(path or ".")
        if real != folder and not real.startswith(folder + os.sep):
            raise ImportError("not in the app folder")  # the next hook takes it
        return source_only(path)

    sys.path_hooks.insert(0, hook)
    sys.path_importer_cache.clear()


def load_app(init: Init) -> App:
    """Import `module:attribute` from the app folder, with only the app folder and the stdlib on sys.path."""
    sys.path[:] = [init.app_folder, *limits.python_paths()]
    source_only_imports(init.app_folder)
    return import_entry(init.entry)


def main() -> None:
    # Ctrl-C at the terminal signals the whole foreground process group, workers included. A worker killed by it
    # while the server shut down was reported lost and replaced; the host stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    bridge_fd = int(sys.argv[1])
    sock, init = read_init(bridge_fd)
    sys.dont_write_bytecode = True  # as -B: the app folder is read-only, and a .pyc there must never exist
    early = apply_early_layers(init, bridge_fd)
    # the event loop makes its self-pipe socketpair now, before seccomp forbids new sockets
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    layers = apply_layers(init, early)
    run_worker(sock, init, layers, loop, lambda: load_app(init), _STARTED)


__all__ = ["apply_early_layers", "apply_layers", "load_app", "main", "source_only_imports"]

if __name__ == "__main__":
    main()
