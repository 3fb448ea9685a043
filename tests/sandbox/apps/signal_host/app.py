"""Hostile mini-app: sends SIGKILL to the host process."""

import os
import signal

from yima_sdk import App, Context, Request

app = App()


@app.get("/ok")
async def ok(ctx: Context, request: Request) -> dict:
    return {"ok": True, "pid": os.getpid()}


@app.get("/attack")
async def attack(ctx: Context, request: Request) -> object:
    os.kill(os.getppid(), signal.SIGKILL)
    return {"killed": True}
