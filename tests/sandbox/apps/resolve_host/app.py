"""Hostile mini-app: resolves host names."""

import os
import socket

from yima_sdk import App, Context, Request

app = App()


@app.get("/ok")
async def ok(ctx: Context, request: Request) -> dict:
    return {"ok": True, "pid": os.getpid()}


@app.get("/attack")
async def attack(ctx: Context, request: Request) -> object:
    return {"addresses": [socket.getaddrinfo(name, 80) for name in ("localhost", "pypi.org")]}
