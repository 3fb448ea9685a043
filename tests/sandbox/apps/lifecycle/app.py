"""A mini-app that exercises the host's supervision: queueing, recycling, crashes, memory and CPU budgets."""

import os
import time

from yima_sdk import App, Context, Request

app = App()
_hoard: list[bytes] = []


@app.get("/pid")
async def pid(ctx: Context, request: Request) -> dict:
    return {"pid": os.getpid()}


@app.get("/gate")
async def gate(ctx: Context, request: Request) -> dict:
    # blocks on a capability the test controls, to keep the worker busy without sleeping
    await ctx.notify.wait_gate()
    return {"pid": os.getpid()}


@app.get("/hoard")
async def hoard(ctx: Context, request: Request) -> dict:
    # keep 24 MiB (under the address-space limit) resident after the call: over the 32 MiB budget with the rest
    _hoard.append(b"\x01" * (24 * 1024 * 1024))
    _hoard.append(b"\x02" * (12 * 1024 * 1024))
    return {"pid": os.getpid()}


@app.get("/crash")
async def crash(ctx: Context, request: Request) -> dict:
    os._exit(70)


@app.get("/burn")
async def burn(ctx: Context, request: Request) -> dict:
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    return {"pid": os.getpid()}
