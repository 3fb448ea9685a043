"""Test app for the simulator: one route per capability operation, answering what the app saw."""

import os

import msgspec
from yima_sdk import (
    App,
    Context,
    Request,
    ScanEvent,
    YimaError,
)

app = App()


def _error(exc: YimaError) -> dict:
    return {"error": exc.code}


@app.post("/op/{capability}/{operation}")
async def op(ctx: Context, request: Request) -> dict:
    """Call ctx.<capability>.<operation>(**body) through the typed facade; answer the value or the error code."""
    facade = getattr(ctx, request.path_params["capability"])
    method = getattr(facade, request.path_params["operation"])
    try:
        value = await method(**(request.json() if request.body else {}))
    except YimaError as exc:
        return _error(exc)
    if hasattr(value, "__struct_fields__"):
        import msgspec

        value = msgspec.to_builtins(value)
    return {"value": value}


@app.get("/whoami")
async def whoami(ctx: Context, request: Request) -> dict:
    return {"id": await ctx.user.id(), "user_id": ctx.user_id, "pid": os.getpid()}


@app.get("/sleep")
async def sleep(ctx: Context, request: Request) -> dict:
    while True:
        pass


@app.get("/crash")
async def crash(ctx: Context, request: Request) -> dict:
    os._exit(9)


@app.get("/boom")
async def boom(ctx: Context, request: Request) -> dict:
    raise ValueError("no")


@app.get("/uncaught-scope")
async def uncaught_scope(ctx: Context, request: Request) -> dict:
    return {"birth_date": await ctx.user.scope("birth_date")}


@app.on_scan("clinic")
async def clinic(ctx: Context, event: ScanEvent) -> dict:
    return {"lines": [f"born {await ctx.user.scope('birth_date')}", f"at {event.scene_id}"]}


@app.on_scan("bus")
async def bus(ctx: Context, event: ScanEvent) -> dict:
    data = event.data
    return {"lines": [data.scan_id, data.scanned_at.isoformat(), data.mode, str(data.amount_fen)]}


@app.on_scan("scenic")
async def scenic(ctx: Context, event: ScanEvent) -> dict:
    # outside the scan reply contract: the terminal cannot show this
    return {"booked": True}


class Booking(msgspec.Struct):
    day: str
    seats: int = 1


@app.post("/typed")
async def typed(ctx: Context, request: Request) -> dict:
    booking = request.json(Booking)
    return {"day": booking.day, "seats": booking.seats}


@app.get("/positional")
async def positional(ctx: Context, request: Request) -> dict:
    """An old-style positional call through the raw proxy: every host refuses it the same way."""
    try:
        await ctx.storage._proxy.get("k")
    except YimaError as exc:
        return _error(exc)
    return {"error": None}
