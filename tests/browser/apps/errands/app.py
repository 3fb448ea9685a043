"""Errands: order a parcel pick-up (a one-card charge the resident confirms in the shell, and an inbox message)
and show the pick-up name when the resident allowed it."""

from __future__ import annotations

from yima_sdk import App, ConsentDenied, Context, Request, Response

app = App()


@app.post("/orders")
async def order(ctx: Context, request: Request) -> Response:
    body = request.json() if request.body else {}
    key = str(body.get("key", "order"))
    payment = await ctx.payments.charge(500, "代取快递", key)
    await ctx.notify.send("已下单", "代取快递：确认付款后开始派送")
    return Response.json({"payment": payment.id, "status": payment.status}, status=201)


@app.get("/me/name")
async def name(ctx: Context, request: Request) -> Response:
    try:
        return Response.json({"name": await ctx.user.scope("real_name_masked")})
    except ConsentDenied:
        return Response.json({"code": "consent.denied"}, status=403)


@app.get("/me/phone")
async def phone(ctx: Context, request: Request) -> Response:
    try:
        return Response.json({"phone": await ctx.user.scope("phone_masked")})
    except ConsentDenied:
        return Response.json({"code": "consent.denied"}, status=403)
