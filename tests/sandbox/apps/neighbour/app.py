"""The innocent neighbour whose latency the escape suite watches while other apps attack."""

from yima_sdk._app import App, Context
from yima_sdk._bridge import Request

app = App()


@app.get("/ping")
async def ping(ctx: Context, request: Request) -> dict:
    return {"pong": True}
