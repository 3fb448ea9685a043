"""Hostile mini-app: writes garbage frames straight onto the bridge socket."""

import os
import stat
import sys

from yima_sdk import App, Context, Request

app = App()


@app.get("/ok")
async def ok(ctx: Context, request: Request) -> dict:
    return {"ok": True, "pid": os.getpid()}


@app.get("/attack")
async def attack(ctx: Context, request: Request) -> object:
    # the worker was started as `python -m sandbox.worker <bridge fd>`
    bridge = int(sys.argv[1])
    assert _is_socket(bridge)
    if request.query.get("kind") == "oversized":
        os.write(bridge, b"\xff\xff\xff\xf0" + b"x" * 64)
    else:
        os.write(bridge, b"\x00\x00\x00\x08" + b"\xc1" * 8)
    return {"sent": True}


def _is_socket(fd: int) -> bool:
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False
