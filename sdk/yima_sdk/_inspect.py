"""`python -I -m yima_sdk._inspect <folder> <entry>`: import an app in a child process (its code stays out of
the CLI's process) and print its routes, scan handlers and job handlers as JSON, for `yima-sdk check`."""

from __future__ import annotations

import importlib
import json
import sys

from yima_sdk._app import App

__all__ = ["main"]


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
