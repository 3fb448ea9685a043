"""The innocent neighbour whose latency the escape suite watches while other apps attack."""

from yima_sdk import App, Context, Request

app = App()


@app.get("/ping")
async def ping(ctx: Context, request: Request) -> dict:
    return {"pong": True}
