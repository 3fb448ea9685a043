"""A mini-app whose calls the test holds (`/gate`) or counts (`/note`): for the queue's and the handoff's tests."""

import os

from yima_sdk import App, Context, Request

app = App()


@app.get("/gate")
async def gate(ctx: Context, request: Request) -> dict:
    # blocks on a capability the test controls, to keep the worker busy without sleeping
    await ctx.notify.wait_gate()
    await ctx.log.info("passed the gate")
    return {"pid": os.getpid()}


@app.get("/note")
async def note(ctx: Context, request: Request) -> dict:
    # every call that runs leaves a record in the app's log
    await ctx.log.info("ran", tag=request.query["tag"])
    return {"pid": os.getpid()}
