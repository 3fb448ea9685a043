"""The clinic: check-in by scanning the Ankang code at its terminal, the screens, and the doctors' queue
(calling, no-shows, finishing a visit with an e-prescription)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import msgspec
from bookings import take_slot
from common import OPEN, ahead_of, app, as_doc, calling, county_now, doctors_booking, holds, problem
from yima_sdk import Context, Request, Response, ScanEvent, VersionConflict
from yima_sdk.cron import COUNTY_TIME

PRESCRIPTION_VALID = dt.timedelta(days=3)
NEXT_SHOWN = 3
"""How many of the next numbers a clinic screen shows after the ones being called."""
_department_names: dict[str, str] = {}
"""Department names by id, kept by each worker once read: check-in shows one on every scan, and no route renames
a department (a renamed one shows its new name once the app's workers restart)."""


class Item(msgspec.Struct, forbid_unknown_fields=True):
    drug: str
    boxes: int = 1


class Finish(msgspec.Struct, forbid_unknown_fields=True):
    items: list[Item] = []


@app.get("/me")
async def me(ctx: Context, request: Request) -> dict[str, Any]:
    """The caller's staff roles here (the page shows doctors their clinic)."""
    staff = await ctx.user.staff()
    return {"staff": [{"role": r.role, "unit": r.unit} for r in staff.roles]}


# ---- check-in at the clinic terminal ----------------------------------------------------------------------


@app.on_scan("clinic")
async def check_in(ctx: Context, event: ScanEvent) -> dict[str, Any] | None:
    if event.data.mode == "offline":
        return None  # nobody waits at the terminal: check-in is at the desk
    if event.user_id is None:
        return {"lines": ["未预约 No booking in 一码就医"]}
    at = (event.data.scanned_at or dt.datetime.now(dt.UTC)).astimezone(COUNTY_TIME)
    unit = event.data.unit or ""
    institution = unit.removeprefix("institution:") if unit.startswith("institution:") else None
    # the code's colour (the resident's `health_color` consent) and today's bookings ([scan_preload] in
    # miniapp.toml) come with the scan, so a terminal waits on one round trip: the check-in beside who is ahead
    # (docs/benchmarks.md, check-in). They are asked here only if the platform could not read them.
    colour = event.data.health_color
    today = event.data.preloaded.get("today")
    if today is None:
        today = await ctx.db.find("bookings", {"user_id": event.user_id, "day": at.date().isoformat()})
    mine = [r for r in today.items if r.value["status"] in OPEN
            and (institution is None or r.value["institution"] == institution)]  # fmt: skip
    if colour in ("red", "yellow"):
        kept = f"预约保留 No. {mine[0].value['number']} kept" if mine else "请勿进入门诊 Do not enter"
        return {"lines": ["发热门诊 Go to the fever clinic", f"健康码 code {colour}", kept]}
    if not mine:
        return await walk_in(ctx, event.user_id, institution, at)
    record = mine[0]
    value = record.value
    checked_in = None
    if value["status"] == "booked":
        value = {**value, "status": "waiting", "checked_in_at": int(at.timestamp())}
        checked_in = _check_in(ctx, record.id, value, record.version)
    # who is ahead depends neither on this booking's own check-in nor on the department's name: all at once
    ahead, _, name = await asyncio.gather(
        ahead_of(ctx, value), checked_in or asyncio.sleep(0), _department_name(ctx, value["department"])
    )
    return {"lines": [
        name,
        f"{value['half'].upper()} 序号 No. {value['number']}",
        f"前面 {ahead} 人 {ahead} ahead",
    ]}  # fmt: skip


async def _department_name(ctx: Context, department_id: str) -> str:
    name = _department_names.get(department_id)
    if name is None:
        department = await ctx.db.get("departments", department_id)
        name = _department_names[department_id] = department.value["name"] if department else department_id
    return name


async def _check_in(ctx: Context, booking_id: str, value: dict[str, Any], version: int) -> None:
    try:
        await ctx.db.update("bookings", booking_id, value, expected_version=version)
    except VersionConflict:
        pass  # checked in by a scan a moment ago


async def walk_in(ctx: Context, user_id: str, institution: str | None, at: dt.datetime) -> dict[str, Any]:
    """A walk-in number in today's session of this half-day that allows walk-ins, if there is one."""
    if institution is None:
        return {"lines": ["今日无预约 No booking today"]}
    half = "am" if at.hour < 12 else "pm"
    page = await ctx.db.find("sessions", {"institution": institution, "day": at.date().isoformat()})
    for session in page.items:
        if session.value["walk_in"] and session.value["half"] == half and session.value["status"] == "open":
            answer = await take_slot(ctx, session, user_id, walk_in=True)
            if answer.status in (200, 201):
                taken = msgspec.json.decode(answer.body)
                await ctx.db.update("bookings", taken["id"], {
                    **{k: v for k, v in taken.items() if k != "id"}, "status": "waiting",
                    "checked_in_at": int(at.timestamp()),
                })  # fmt: skip
                fee = "请在手机上付费 Pay on your phone" if taken["payment_id"] else "免挂号费 No fee"
                return {"lines": [f"现场号 Walk-in No. {taken['number']}", session.value["doctor_name"], fee]}
    return {"lines": ["今日无预约 No booking today", "无现场号 No walk-in numbers left"]}


@app.get("/sessions/{session}/screen")
async def screen(ctx: Context, request: Request) -> Response:
    """The clinic screen: the numbers being called, the next ones and how many wait (no names, no ids)."""
    sid = request.path_params["session"]
    session = await ctx.db.get("sessions", sid)
    if session is None:
        return problem(404, "medical.no_such_session", "no session with that id")
    waiting, called, coming = await asyncio.gather(
        ctx.db.count("bookings", {"session": sid, "status": "waiting"}),
        calling(ctx, sid),
        ctx.db.find("bookings", {"session": sid, "status": "waiting"}, order_by="number", limit=NEXT_SHOWN),
    )
    return Response.json({"session": as_doc(session), "calling": called, "waiting": waiting,
                          "next": [r.value["number"] for r in coming.items]})  # fmt: skip


@app.get("/screens")
async def screens(ctx: Context, request: Request) -> Response:
    """The clinic screens of an `institution` on a `day` (today by default), one call for all its open
    sessions: per session the numbers being called, the next ones (in the order the doctor calls them) and how
    many wait (no names, no ids). The waiting-room display (ui/screen.html) polls it."""
    institution = request.query.get("institution")
    if not institution:
        return problem(400, "medical.screens_need_an_institution", "give institution (and day)")
    day = request.query.get("day") or county_now(request).date().isoformat()
    sessions = await ctx.db.find("sessions", {"institution": institution, "day": day}, limit=100)
    calling: dict[str, list[int]] = {}
    waiting: dict[str, list[int]] = {}
    after = None
    while True:  # the day's bookings at the institution, every page, grouped by session
        page = await ctx.db.find("bookings", {"day": day, "institution": institution}, limit=100, after=after)
        for record in page.items:
            sid, status = record.value["session"], record.value["status"]
            if status == "called":
                calling.setdefault(sid, []).append(record.value["number"])
            elif status == "waiting":
                waiting.setdefault(sid, []).append(record.value["number"])
        after = page.cursor
        if after is None:
            break
    return Response.json({"day": day, "screens": [
        {"session": s.id, "half": s.value["half"], "doctor_name": s.value["doctor_name"],
         "calling": sorted(calling.get(s.id, [])), "waiting": len(waiting.get(s.id, [])),
         "next": sorted(waiting.get(s.id, []))[:NEXT_SHOWN]}
        for s in sorted(sessions.items, key=lambda s: (s.value["half"], s.value["doctor"]))
        if s.value["status"] == "open"
    ]})  # fmt: skip


# ---- doctors: the queue, no-shows, finishing a visit with an e-prescription -------------------------------


@app.post("/doctor/sessions/{session}/next")
async def call_next(ctx: Context, request: Request) -> Response:
    session = await ctx.db.get("sessions", request.path_params["session"])
    if session is None:
        return problem(404, "medical.no_such_session", "no session with that id")
    if not await holds(ctx, "doctor", session.value["institution"]):
        return problem(403, "medical.other_institution", "you work at another institution")
    for _ in range(5):  # two doctors calling at once: each gets a different patient
        page = await ctx.db.find(
            "bookings", {"session": session.id, "status": "waiting"}, order_by="number", limit=1
        )
        if not page.items:
            return Response.json({"number": None, "waiting": 0})
        record = page.items[0]
        try:
            await ctx.db.update("bookings", record.id, {**record.value, "status": "called"},
                                expected_version=record.version)  # fmt: skip
        except VersionConflict:
            continue
        await ctx.notify.send(
            "请就诊 Your turn",
            f"序号 No. {record.value['number']}: 请到诊室 please come in",
            user_id=record.value["user_id"],
        )
        waiting = await ctx.db.count("bookings", {"session": session.id, "status": "waiting"})
        return Response.json({"booking": record.id, "number": record.value["number"], "waiting": waiting})
    return problem(409, "medical.busy", "the queue is changing: call again")


@app.post("/doctor/bookings/{booking}/no-show")
async def no_show(ctx: Context, request: Request) -> Response:
    """The called patient did not come: marked, and the slot released for another booking."""
    record = await doctors_booking(ctx, request.path_params["booking"])
    if isinstance(record, Response):
        return record
    if record.value["status"] not in ("called", "waiting", "booked"):
        return problem(409, "medical.not_in_queue", f"the booking is {record.value['status']}")
    try:
        async with ctx.db.transaction() as tx:
            tx.update(
                "bookings", record.id, {**record.value, "status": "no_show"}, expected_version=record.version
            )
            tx.counter_add(f"taken:{record.value['session']}", -1, min=0)
    except VersionConflict:
        return problem(409, "medical.changed", "the booking changed meanwhile")
    return Response.json({"status": "no_show"})


@app.post("/doctor/bookings/{booking}/finish")
async def finish(ctx: Context, request: Request) -> Response:
    """The visit is over; with items, an e-prescription pass the resident shows at a pharmacy of the medicine
    app (shared through [share_passes_with])."""
    body = request.json(Finish)
    record = await doctors_booking(ctx, request.path_params["booking"])
    if isinstance(record, Response):
        return record
    if record.value["status"] != "called":
        return problem(409, "medical.not_called", f"the booking is {record.value['status']}")
    prescription = None
    if body.items:
        issued = await ctx.credentials.issue_pass(
            "prescription",
            {
                "visit": record.id[:60],
                "institution": record.value["institution"],
                "items": [[item.drug[:40], item.boxes] for item in body.items[:8]],
            },
            valid_until=int(time.time() + PRESCRIPTION_VALID.total_seconds()),
            user_id=record.value["user_id"],
        )
        prescription = {"id": issued.id, "payload": issued.payload, "valid_until": issued.valid_until}
    value = {**record.value, "status": "done", "prescription": prescription}
    try:
        await ctx.db.update("bookings", record.id, value, expected_version=record.version)
    except VersionConflict:
        if prescription:
            await ctx.credentials.revoke_pass(prescription["id"])
        return problem(409, "medical.changed", "the booking changed meanwhile")
    if prescription:
        await ctx.notify.send("电子处方 E-prescription", "在一码购药出示 show it at a pharmacy",
                              user_id=record.value["user_id"])  # fmt: skip
    return Response.json({"status": "done", "prescription": prescription})


# ---- residents: their e-prescriptions ---------------------------------------------------------------------


@app.get("/prescriptions")
async def my_prescriptions(ctx: Context, request: Request) -> dict[str, Any]:
    """The e-prescriptions written for the resident (and the family members they book for) that a pharmacy can
    still fill: not expired, not revoked (each pass is verified as a pharmacy would). A filled one is the medicine
    app's to say (`POST /prescriptions/check` there); this app never learns it."""
    user_id = await ctx.user.id()
    since = (county_now(request) - PRESCRIPTION_VALID).date().isoformat()
    page = await ctx.db.find(
        "bookings", {"user_id": user_id, "day": {"gte": since}}, order_by="day", limit=100
    )
    written = [r for r in page.items if r.value["status"] == "done" and r.value.get("prescription")]
    verdicts = await asyncio.gather(
        *(ctx.credentials.verify(r.value["prescription"]["payload"]) for r in written)
    )
    return {"prescriptions": [
        {"id": v.pass_id, "booking": r.id, "day": r.value["day"], "institution": r.value["institution"],
         "department": r.value["department"], "member": r.value.get("member"),
         "items": v.data.get("items", []), "valid_until": r.value["prescription"]["valid_until"],
         "payload": r.value["prescription"]["payload"]}
        for r, v in zip(written, verdicts, strict=True)
        if v.valid and v.user_id == user_id
    ]}  # fmt: skip
