"""Hostile mini-app: starts threads until the kernel refuses (RLIMIT_NPROC) and keeps them, so that every
other process counted against the same uid can start no thread either."""

import os
import threading

from yima_sdk import App, Context, Request

app = App()
_hold = threading.Event()
_threads: list[threading.Thread] = []


@app.get("/ok")
async def ok(ctx: Context, request: Request) -> dict:
    return {"ok": True, "pid": os.getpid()}


@app.get("/attack")
async def attack(ctx: Context, request: Request) -> dict:
    threading.stack_size(64 * 1024)  # small stacks: the process limit, not the address space, runs out first
    error = ""
    while len(_threads) < 100_000:
        thread = threading.Thread(target=_hold.wait, daemon=True)
        try:
            thread.start()
        except RuntimeError as exc:
            error = str(exc)
            break
        _threads.append(thread)
    return {"threads": len(_threads), "error": error}
