"""Source of the probe mini-app the platform tests publish (written into a fresh folder per test, with its
own app id, so tests sharing one database never share an app)."""

from __future__ import annotations

PROBE_SOURCE = '''
"""Probe: one route per platform behaviour the tests check."""

import asyncio

import msgspec
from yima_sdk import App, ConsentDenied, Context, CounterOutOfRange, Request, Response, VersionConflict

app = App()


@app.get("/whoami")
async def whoami(ctx: Context, request: Request) -> dict:
    return {"user_id": await ctx.user.id(), "version": "{version}"}


@app.get("/age")
async def age(ctx: Context, request: Request) -> Response:
    try:
        born = await ctx.user.scope("birth_date")
    except ConsentDenied as exc:
        return Response.json({"code": exc.code, "detail": "we need your birth date for the senior fare"}, status=403)
    return Response.json({"birth_date": born})


@app.get("/age-uncaught")
async def age_uncaught(ctx: Context, request: Request) -> dict:
    return {"birth_date": await ctx.user.scope("birth_date")}


@app.put("/docs/{key}")
async def put_doc(ctx: Context, request: Request) -> Response:
    body = request.json()
    try:
        version = await ctx.storage.put(request.path_params["key"], body["value"], expected_version=body.get("expected"))
    except VersionConflict as exc:
        return Response.json({"code": exc.code}, status=409)
    return Response.json({"version": version})


@app.get("/docs/{key}")
async def get_doc(ctx: Context, request: Request) -> dict:
    doc = await ctx.storage.get_document(request.path_params["key"])
    return {"doc": None if doc is None else {"value": doc.value, "version": doc.version}}


@app.get("/list")
async def listing(ctx: Context, request: Request) -> dict:
    page = await ctx.storage.list(prefix=request.query.get("prefix", ""), cursor=request.query.get("cursor"), limit=2)
    return {"keys": [d.key for d in page.items], "cursor": page.cursor}


@app.post("/book")
async def book(ctx: Context, request: Request) -> Response:
    try:
        taken = await ctx.storage.counter_add("slots:day1", 1, max=30)
    except CounterOutOfRange:
        return Response.json({"code": "full"}, status=409)
    return Response.json({"taken": taken})


@app.post("/db/book")
async def db_book(ctx: Context, request: Request) -> Response:
    # a slot and a booking in one commit: never a booking without its slot, never more slots than there are
    try:
        async with ctx.db.transaction() as tx:
            tx.counter_add("db:slots", 1, max=int(request.query["slots"]))
            tx.insert("bookings", {"day": "2026-03-02", "user_id": await ctx.user.id(), "n": request.query["n"]})
    except CounterOutOfRange:
        return Response.json({"code": "full"}, status=409)
    return Response.json({"slot": tx.results[0]}, status=201)


@app.post("/db/tx3")
async def db_tx3(ctx: Context, request: Request) -> Response:
    # three writes in one commit (a day's counter, a booking, its ledger line): tests/bench/bench_db.py
    n = int(request.query["n"])
    async with ctx.db.transaction() as tx:
        tx.counter_add(f"db:day:{n % 64}", 1)
        booking = tx.insert("bookings", {"day": "2026-04-01", "user_id": f"u{n}", "doctor_id": f"d{n % 16}"})
        tx.insert("ledger", {"booking": booking, "fee": 500})
    return Response.json({"booking": booking}, status=201)


@app.get("/db/bookings/{day}")
async def db_bookings(ctx: Context, request: Request) -> dict:
    day = request.path_params["day"]
    return {"count": await ctx.db.count("bookings", {"day": day}), "taken": await ctx.storage.counter_get("db:slots")}


@app.post("/db/notify-in-transaction")
async def db_notify(ctx: Context, request: Request) -> dict:
    async with ctx.db.transaction() as tx:
        tx.insert("bookings", {"day": "2026-03-03"})
        await ctx.notify.send("Booked", "not yet: the commit has not happened")
    return {}


@app.post("/raw/{capability}/{operation}")
async def raw(ctx: Context, request: Request) -> object:
    # one typed capability call with the body as its keyword arguments; its errors are not caught
    facade = getattr(ctx, request.path_params["capability"])
    value = await getattr(facade, request.path_params["operation"])(**request.json())
    return msgspec.to_builtins(value)


class Booking(msgspec.Struct):
    day: str
    seats: int = 1


@app.post("/typed")
async def typed(ctx: Context, request: Request) -> dict:
    booking = request.json(Booking)
    return {"day": booking.day, "seats": booking.seats}


@app.post("/echo")
async def echo(ctx: Context, request: Request) -> dict:
    return {"length": len(request.body)}


@app.get("/big")
async def big(ctx: Context, request: Request) -> bytes:
    return b"x" * int(request.query["n"])


@app.post("/notify")
async def notify(ctx: Context, request: Request) -> dict:
    return {"message": await ctx.notify.send("Your book is ready", "Collect it at the front desk")}


@app.post("/charge")
async def charge(ctx: Context, request: Request) -> dict:
    payment = await ctx.payments.charge(200, "Late return fee", "late-fee-0001")
    return {"id": payment.id, "status": payment.status}


@app.get("/charge/{id}")
async def charge_status(ctx: Context, request: Request) -> dict:
    return {"status": (await ctx.payments.status(request.path_params["id"])).status}


@app.delete("/charge/{id}")
async def charge_cancel(ctx: Context, request: Request) -> dict:
    return {"status": (await ctx.payments.cancel(request.path_params["id"])).status}


@app.get("/staff/me")
async def staff_me(ctx: Context, request: Request) -> dict:
    staff = await ctx.user.staff()
    return {"roles": [{"role": r.role, "unit": r.unit} for r in staff.roles]}


@app.get("/patients/today")
async def patients_today(ctx: Context, request: Request) -> dict:
    # a staff route ([staff.routes]): the gateway let only doctors through
    staff = await ctx.user.staff()
    return {"doctor": staff.has("doctor"), "clinics": staff.units("doctor")}


@app.on_scan("clinic")
async def clinic(ctx: Context, event) -> dict:
    unit = {"unit": event.data.unit} if event.data.unit else {}  # the terminal's staff unit, when it has one
    await ctx.storage.put("last-scan", {"user": event.user_id, "scene": event.scene_id, **unit})
    if event.data.mode == "offline":  # the order offline scans reached the app in (read, then written back)
        doc = await ctx.storage.get_document("offline-scans")
        heard = [] if doc is None else doc.value["at"]
        await ctx.storage.put("offline-scans", {"at": [*heard, event.data.scanned_at.isoformat()]})
    return {"lines": ["Queue number 7", "Room 203"]}


@app.on_scan("counter")
async def counter(ctx: Context, event) -> dict:
    # outside the scan reply contract (the old scaffold's answer): the platform must not drop it silently
    return {"booked": True, "slot": 1}


@app.on_scan("pharmacy")
async def slow(ctx: Context, event) -> dict:
    await asyncio.sleep(1.5)
    return {"lines": ["too late"]}


@app.on_scan("bus")
async def broken(ctx: Context, event) -> dict:
    raise RuntimeError("the app has a bug")
'''

PROBE_MANIFEST = """
id = "{app_id}"
name = "Probe {app_id}"
version = "{version}"
entry = "app:app"
capabilities = ["user", "storage", "notify", "payments", "credentials", "log", "db"]
scenes = ["clinic", "counter", "pharmacy", "bus"]

[collections.bookings]
indexes = ["day", "user_id", ["doctor_id", "day"]]

[collections.ledger]
indexes = ["booking"]

[scopes]
birth_date = "Seniors ride free: we check your age"

[limits]
workers = 1
timeout_ms = 2000

[staff.roles]
admin = "Grants the probe's staff roles at their clinic"
doctor = "Sees the day's patients at their clinic"

[staff.units]
clinic = "A clinic of the county hospital group"

[staff.routes]
"GET /patients/today" = "doctor"
"""
