"""Hostile mini-app: opens a TCP socket."""

import os
import socket

from yima_sdk import App, Context, Request

app = App()


@app.get("/ok")
async def ok(ctx: Context, request: Request) -> dict:
    return {"ok": True, "pid": os.getpid()}


@app.get("/attack")
async def attack(ctx: Context, request: Request) -> object:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    return {"opened": s.fileno()}
