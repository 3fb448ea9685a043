"""Hostile mini-app: recurses without end."""

import os

from yima_sdk import App, Context, Request

app = App()


@app.get("/ok")
async def ok(ctx: Context, request: Request) -> dict:
    return {"ok": True, "pid": os.getpid()}


@app.get("/attack")
async def attack(ctx: Context, request: Request) -> object:
    def down(n: int) -> int:
        return down(n + 1) + 1

    return {"depth": down(0)}
