"""The innocent neighbour whose latency the escape suite watches while other apps attack."""

import threading

from yima_sdk import App, Context, Request

app = App()


@app.get("/ping")
async def ping(ctx: Context, request: Request) -> dict:
    return {"pong": True}


@app.get("/thread")
async def thread(ctx: Context, request: Request) -> dict:
    """Start and join one thread: what a thread bomb in another app must not take away."""
    done: list[bool] = []
    worker = threading.Thread(target=lambda: done.append(True))
    worker.start()
    worker.join()
    return {"thread": done == [True]}
