"""Hostile mini-app: connects to PostgreSQL on 127.0.0.1:5432."""

import os
import socket

from yima_sdk import App, Context, Request

app = App()


@app.get("/ok")
async def ok(ctx: Context, request: Request) -> dict:
    return {"ok": True, "pid": os.getpid()}


@app.get("/attack")
async def attack(ctx: Context, request: Request) -> object:
    s = socket.create_connection(("127.0.0.1", 5432), timeout=1)
    return {"connected": s.getpeername()}
