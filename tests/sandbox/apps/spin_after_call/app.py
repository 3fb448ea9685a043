"""Hostile mini-app: answers at once and leaves a thread spinning, so the CPU is burnt after the call, where
no deadline looks, and the next call (or a neighbour) pays for it."""

import os
import threading

from yima_sdk import App, Context, Request

app = App()


def _spin() -> None:
    while True:
        pass


@app.get("/ok")
async def ok(ctx: Context, request: Request) -> dict:
    return {"ok": True, "pid": os.getpid()}


@app.get("/attack")
async def attack(ctx: Context, request: Request) -> dict:
    threading.Thread(target=_spin, daemon=True).start()
    return {"spinning": True, "pid": os.getpid()}
