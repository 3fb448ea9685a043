"""`python -I -m yima_sdk._inspect <folder> <entry>`: import an app in a child process (its code stays out of
the CLI's process) and print its routes, scan handlers and job handlers as JSON, for `yima-sdk check`."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

from yima_sdk._app import App

__all__ = ["inspect_app", "job_handlers", "main"]


def inspect_app(folder: Path, entry: str) -> subprocess.CompletedProcess[str]:
    """This module run on the app's folder in a child process (the app's code stays out of ours, and writes no
    bytecode there): its stdout is the JSON of routes, scenes and jobs when it imports."""
    return subprocess.run(  # noqa: S603 - the interpreter running us, this module, the folder given
        [sys.executable, "-I", "-B", "-m", "yima_sdk._inspect", str(folder), entry],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=60,
        check=False,
    )


def job_handlers(folder: Path, entry: str) -> list[str]:
    """The app's job handlers (`@app.job(name)`), as `yima-sdk check` finds them; empty if it does not import.
    `yima-sdk dev` and `yima dev` run a `seed` job by this."""
    done = inspect_app(folder, entry)
    if done.returncode != 0:
        return []
    return list(json.loads(done.stdout.strip().splitlines()[-1]).get("jobs", []))


def main() -> None:
    folder, entry = sys.argv[1], sys.argv[2]
    sys.dont_write_bytecode = True
    sys.path.insert(0, folder)
    module_name, _, attribute = entry.partition(":")
    app = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(app, App):
        raise SystemExit(f"entry {entry!r} is a {type(app).__name__}, not a yima_sdk App")
    routes = [[route.method, route.template] for route in app._routes]
    print(json.dumps({"routes": routes, "scenes": sorted(app._scans), "jobs": sorted(app._jobs)}))


if __name__ == "__main__":
    main()
