"""Hostile mini-app: spawns a shell."""

# hostile on purpose; blocking the event loop is the least of its sins
# ruff: noqa: ASYNC221
import os
import subprocess

from yima_sdk import App, Context, Request

app = App()


@app.get("/ok")
async def ok(ctx: Context, request: Request) -> dict:
    return {"ok": True, "pid": os.getpid()}


@app.get("/attack")
async def attack(ctx: Context, request: Request) -> object:
    done = subprocess.run(["/bin/sh", "-c", "id"], capture_output=True, check=False)
    return {"out": done.stdout.decode()}
