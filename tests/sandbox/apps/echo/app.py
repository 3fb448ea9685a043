"""A well-behaved mini-app: echoes, path params, capabilities (declared and not), parallel requests."""

import asyncio

from yima_sdk import App, CapabilityDenied, Context, Request

app = App()


@app.get("/ping")
async def ping(ctx: Context, request: Request) -> dict:
    return {"pong": True, "user": ctx.user_id}


@app.get("/books/{id}")
async def book(ctx: Context, request: Request) -> dict:
    return {"id": request.path_params["id"]}


@app.post("/store/{key}")
async def store(ctx: Context, request: Request) -> dict:
    await ctx.storage.put(request.path_params["key"], request.json())
    return {"stored": await ctx.storage.get(request.path_params["key"])}


@app.get("/parallel")
async def parallel(ctx: Context, request: Request) -> dict:
    # several capability requests in flight at once
    values = await asyncio.gather(*(ctx.storage.get(f"k{i}") for i in range(5)))
    await ctx.log.info("parallel done", count=len(values))
    return {"values": values}


@app.get("/pay")
async def pay(ctx: Context, request: Request) -> dict:
    try:
        await ctx.payments.charge(amount_fen=100)
    except CapabilityDenied as exc:
        return {"denied": exc.code}
    return {"denied": None}


@app.get("/pay-uncaught")
async def pay_uncaught(ctx: Context, request: Request) -> dict:
    await ctx.payments.charge(amount_fen=100)
    return {}


@app.on_scan("clinic")
async def clinic(ctx: Context, event) -> dict:
    return {"queue_number": 7, "scene": event.scene_id}
