"""Hostile mini-app: connects to Redis on 127.0.0.1:6379 and sends a PING."""

import os
import socket

from yima_sdk import App, Context, Request

app = App()


@app.get("/ok")
async def ok(ctx: Context, request: Request) -> dict:
    return {"ok": True, "pid": os.getpid()}


@app.get("/attack")
async def attack(ctx: Context, request: Request) -> object:
    s = socket.create_connection(("127.0.0.1", 6379), timeout=1)
    s.sendall(b"PING\r\n")
    return {"reply": s.recv(16).decode()}
