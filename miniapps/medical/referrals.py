"""Two-way referrals: a township doctor refers a patient up to a county department, a county doctor back to a
township centre; the resident books it with priority."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from common import app, as_doc, doctors_booking, problem
from yima_sdk import Context, Request, Response


class Referral(msgspec.Struct, forbid_unknown_fields=True):
    department: str
    reason: str


@app.get("/referrals")
async def my_referrals(ctx: Context, request: Request) -> dict[str, Any]:
    page = await ctx.db.find("referrals", {"user_id": await ctx.user.id()}, limit=100)
    return {"referrals": [as_doc(r) for r in page.items]}


@app.post("/doctor/bookings/{booking}/refer")
async def refer(ctx: Context, request: Request) -> Response:
    """Two-way referral: a township doctor refers the patient up to a county department, a county doctor back
    to a township centre for follow-up; the resident books it with priority (the slots held back)."""
    body = request.json(Referral)
    record = await doctors_booking(ctx, request.path_params["booking"])
    if isinstance(record, Response):
        return record
    if record.value["status"] not in ("called", "done"):
        return problem(409, "medical.not_seen", "refer a patient you have called")
    department = await ctx.db.get("departments", body.department)
    if department is None or department.value["institution"] == record.value["institution"]:
        return problem(404, "medical.no_such_department", "no department of another institution with that id")
    if not 1 <= len(body.reason) <= 200:
        return problem(400, "medical.reason", "a reason of 1-200 characters")
    origin = await ctx.db.get("institutions", record.value["institution"])
    target = await ctx.db.get("institutions", department.value["institution"])
    assert origin is not None and target is not None
    direction = "back" if origin.value["kind"] == "county" and target.value["kind"] == "township" else "up"
    value = {
        "user_id": record.value["user_id"], "member": record.value.get("member"), "from_booking": record.id,
        "from_institution": record.value["institution"], "to_institution": department.value["institution"],
        "to_department": department.id, "reason": body.reason, "direction": direction, "status": "open",
        "at": int(time.time()),
    }  # fmt: skip
    written = await ctx.db.insert("referrals", value)
    await ctx.notify.send(
        "转诊 Referral" if direction == "up" else "下转随访 Follow-up referral",
        f"{target.value['name']} {department.value['name']}: 可优先预约 book with priority",
        user_id=record.value["user_id"],
    )
    return Response.json({"id": written.id, **value}, status=201)
