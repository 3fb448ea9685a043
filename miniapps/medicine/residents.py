"""Residents: paying a sale made to them, their purchases, and what an e-prescription of theirs holds."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from common import MEDICAL, app, as_doc, problem
from sales import Refused, filled_at, prescribed_items, sale_named, sale_view
from yima_sdk import Context, Request, Response, VersionConflict


@app.post("/sales/{sale}/pay")
async def pay(ctx: Context, request: Request) -> Response:
    """The resident pays a sale made to them: a one-card charge they confirm on their phone."""
    record = await sale_named(ctx, request)
    user_id = await ctx.user.id()
    if record is None or record.value["kind"] != "sale" or record.value["user_id"] != user_id:
        return problem(404, "medicine.no_such_sale", "no sale of yours with that id")
    view = await sale_view(ctx, record)
    if view["status"] in ("void", "refunded"):
        return problem(409, "medicine.sale_closed", f"the sale is {view['status']}")
    if view["status"] in ("pending_confirmation", "succeeded"):
        return Response.json({"sale": record.id, "payment_id": view["payment_id"], "status": view["status"]})
    # a first attempt, or one more after a declined or failed one (each attempt its own key: a retry of the
    # same attempt finds the same payment and never charges twice). The attempt is claimed before the charge,
    # in a commit that fails if the sale was voided meanwhile (the void's commit checks the same claim).
    attempt = view["attempt"] if view["status"] == "paying" else view["attempt"] + 1
    if view["status"] != "paying":
        closed = problem(409, "medicine.sale_closed", "the sale is void")
        try:
            async with ctx.db.transaction() as tx:
                if await tx.get("sales", f"{record.id}.void") is not None:
                    raise Refused("medicine.sale_closed", "the sale is void")
                tx.insert("sales", {"kind": "attempt", "sale": record.id, "user_id": user_id,
                                    "pharmacy": record.value["pharmacy"], "attempt": attempt,
                                    "at": int(time.time())}, id=f"{record.id}.attempt.{attempt}")  # fmt: skip
        except Refused:
            return closed
        except (
            VersionConflict
        ):  # voided at this moment, or the same attempt claimed by a retry: go on with it
            if await ctx.db.get("sales", f"{record.id}.void") is not None:
                return closed
    payment = await ctx.payments.charge(record.value["total_fen"], "一码购药 medicine",
                                        idempotency_key=f"sale.{record.id}.{attempt}")  # fmt: skip
    try:
        await ctx.db.insert("sales", {"kind": "payment", "sale": record.id, "user_id": user_id,
                                      "pharmacy": record.value["pharmacy"], "payment_id": payment.id,
                                      "attempt": attempt, "at": int(time.time())},
                            id=f"{record.id}.payment.{attempt}")  # fmt: skip
    except VersionConflict:
        pass  # the same attempt at the same moment: the same key gave the same payment
    return Response.json({"sale": record.id, "payment_id": payment.id, "status": payment.status})


@app.get("/purchases")
async def purchases(ctx: Context, request: Request) -> dict[str, Any]:
    user_id = await ctx.user.id()
    page = await ctx.db.find("sales", {"user_id": user_id}, order_by="-at", limit=100)
    sales = [await sale_view(ctx, r) for r in page.items if r.value["kind"] == "sale"]
    # a fill stands until its `<id>.released` record (the sale voided or refunded) follows it
    records = (await ctx.db.find("redemptions", {"user_id": user_id}, limit=100)).items
    released = {r.value["redemption"] for r in records if r.value.get("kind") == "released"}
    filled = [as_doc(r) for r in records if r.value.get("kind") != "released" and r.id not in released]
    return {"purchases": sales, "prescriptions_filled": filled}


class Payload(msgspec.Struct, forbid_unknown_fields=True):
    payload: str


@app.post("/prescriptions/check")
async def prescription(ctx: Context, request: Request) -> Response:
    """What an e-prescription holds and whether it is filled: the resident shows it, the page asks."""
    verdict = await ctx.credentials.verify(request.json(Payload).payload)
    if not verdict.valid or verdict.issuer_app != MEDICAL:
        return Response.json({"valid": False, "reason": verdict.reason or "medicine.not_a_prescription"})
    if verdict.user_id is None or verdict.user_id != await ctx.user.id():
        return Response.json({"valid": False, "reason": "medicine.prescription_not_theirs"})
    return Response.json({
        "valid": True, "items": [[d, n] for d, n in prescribed_items(verdict.data).items()],
        "filled_at": await filled_at(ctx, f"{MEDICAL}.{verdict.pass_id}"),
    })  # fmt: skip
