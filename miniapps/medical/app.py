"""一码就医 Medical visits (gov.guangde.medical): sessions, bookings, check-in by scanning the Ankang code, the
clinic queue and e-prescriptions, on yima_sdk alone (docs/miniapps/medical.md tells each flow).

Data (ctx.db collections, declared with their indexes in miniapp.toml):
    institutions  hospitals and township health centres, each with the age from which the fee is waived
    departments   of an institution; doctors of a department
    sessions      a doctor's morning (`am`) or afternoon (`pm`) of a day: capacity, fee, walk-ins allowed
    bookings      id `<session>.<resident>`: one per resident and session; status booked -> waiting (checked
                  in) -> called -> done, or cancelled / no_show; `number` is the queue number
Counters (storage): `taken:<session>` (bounded by the capacity in the booking's own commit: never more bookings
than slots, whatever the concurrency) and `numbers:<session>` (queue numbers, never reused).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import msgspec
import seed
from yima_sdk import (
    App,
    ConsentDenied,
    Context,
    CounterOutOfRange,
    JobEvent,
    Request,
    Response,
    ScanEvent,
    VersionConflict,
)
from yima_sdk.cron import COUNTY_TIME

app = App()

STARTS = {"am": dt.time(8, 0), "pm": dt.time(14, 0)}
CANCEL_HOURS = 1
"""Residents cancel (and are refunded) until one hour before the session starts, unless its scheduler set
another cut-off (`cancel_hours`, 0-72)."""
PRESCRIPTION_VALID = dt.timedelta(days=3)
OPEN = ("booked", "waiting", "called")
_department_names: dict[str, str] = {}
"""Department names by id, kept by each worker once read: check-in shows one on every scan, and no route renames
a department (a renamed one shows its new name once the app's workers restart)."""


class NewSession(msgspec.Struct, forbid_unknown_fields=True):
    doctor: str
    day: dt.date
    half: str
    capacity: int
    fee_fen: int
    walk_in: bool = False
    referral_reserve: int = 0
    """Slots (within the capacity) that only residents with a referral may book."""
    cancel_hours: int = CANCEL_HOURS
    """Residents cancel (refunded) until this many hours before the session starts."""


class BookFor(msgspec.Struct, forbid_unknown_fields=True):
    member: str | None = None
    """A family member the resident manages (`POST /family`); None: the resident."""
    referral: str | None = None
    """An open referral to this session's department: books one of the slots held back for referrals."""


class Member(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    relation: str
    consent: bool
    """The member (or, for a child, the resident as guardian) agrees that the resident books for them."""


class Referral(msgspec.Struct, forbid_unknown_fields=True):
    department: str
    reason: str


class SessionChange(msgspec.Struct, forbid_unknown_fields=True):
    capacity: int | None = None
    fee_fen: int | None = None
    walk_in: bool | None = None
    cancel_hours: int | None = None
    """For bookings made from now on: each keeps the cut-off it was booked under."""


class Item(msgspec.Struct, forbid_unknown_fields=True):
    drug: str
    boxes: int = 1


class Finish(msgspec.Struct, forbid_unknown_fields=True):
    items: list[Item] = []


def problem(status: int, code: str, message: str) -> Response:
    return Response.json({"code": code, "error": message}, status=status)


def county_now(request: Request | None = None) -> dt.datetime:
    """The platform's time of the request (the simulator's `advance` moves it), in county time."""
    at = request.received_at if request is not None else None
    return (at or dt.datetime.now(dt.UTC)).astimezone(COUNTY_TIME)


def starts_at(session: dict[str, Any]) -> dt.datetime:
    day = dt.date.fromisoformat(session["day"])
    return dt.datetime.combine(day, STARTS[session["half"]], COUNTY_TIME)


def age_on(born: str, day: dt.date) -> int:
    birth = dt.date.fromisoformat(born)
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


# ---- residents: search, book, pay, cancel, see their place in the queue ----------------------------------


@app.get("/me")
async def me(ctx: Context, request: Request) -> dict[str, Any]:
    """The caller's staff roles here (the page shows doctors their clinic)."""
    staff = await ctx.user.staff()
    return {"staff": [{"role": r.role, "unit": r.unit} for r in staff.roles]}


@app.get("/institutions")
async def institutions(ctx: Context, request: Request) -> dict[str, Any]:
    found = await ctx.db.find("institutions", limit=100)
    out = []
    for record in found.items:
        departments = await ctx.db.find("departments", {"institution": record.id}, limit=100)
        out.append({"id": record.id, **record.value, "departments": [_doc(d) for d in departments.items]})
    return {"institutions": out}


@app.get("/sessions")
async def search(ctx: Context, request: Request) -> Response:
    """Open sessions by `department` or `doctor` (and `day`), or all of a `day`."""
    q = request.query
    day = q.get("day")
    where: dict[str, Any] = {}
    if q.get("department"):
        where["department"] = q["department"]
    elif q.get("doctor"):
        where["doctor"] = q["doctor"]
    elif q.get("institution"):
        where["institution"] = q["institution"]
    elif not day:
        return problem(400, "medical.search_needs_a_filter", "give department, doctor, institution or day")
    if day:
        where["day"] = day
    elif where:
        where["day"] = {"gte": county_now(request).date().isoformat()}
    page = await ctx.db.find("sessions", where, order_by="day", limit=100, after=q.get("after"))
    sessions = []
    for record in page.items:
        if record.value["status"] != "open":
            continue
        taken = await ctx.storage.counter_get(f"taken:{record.id}")
        sessions.append({**_doc(record), "left": max(record.value["capacity"] - taken, 0)})
    return Response.json({"sessions": sessions, "next": page.cursor})


@app.post("/sessions/{session}/book")
async def book(ctx: Context, request: Request) -> Response:
    """Book a slot. What the booking needs is read at once (the session, the slots taken, the resident's booking
    of it, the member and referral named): a burst of residents waits on one round trip of reads each, and
    those refused for a full session on nothing more (docs/benchmarks.md, medical booking)."""
    user_id = ctx.user_id
    if user_id is None:
        return problem(401, "medical.sign_in", "sign in to book")
    sid = request.path_params["session"]
    body = request.json(BookFor) if request.body else BookFor()
    patient = user_id if body.member is None else body.member
    session, taken, existing, found, referral = await asyncio.gather(
        ctx.db.get("sessions", sid),
        ctx.storage.counter_get(f"taken:{sid}"),
        ctx.db.get("bookings", f"{sid}.{patient}"),
        ctx.db.get("members", body.member) if body.member is not None else _nothing(),
        ctx.db.get("referrals", body.referral) if body.referral is not None else _nothing(),
    )
    if session is None or session.value["status"] != "open":
        return problem(404, "medical.no_such_session", "no open session with that id")
    if session.value["day"] < county_now(request).date().isoformat():
        return problem(409, "medical.session_over", "this session is over")
    member = None
    if body.member is not None:
        if found is None or found.value["user_id"] != user_id:
            return problem(404, "medical.no_such_member", "no family member of yours with that id")
        member = found.id
    if body.referral is not None:
        if referral is None or referral.value["user_id"] != user_id or referral.value["member"] != member:
            return problem(404, "medical.no_such_referral", "no referral of this patient with that id")
        if (
            referral.value["status"] != "open"
            or referral.value["to_department"] != session.value["department"]
        ):
            return problem(
                409, "medical.referral_not_for_this", "the referral is used or for another department"
            )
    return await take_slot(
        ctx, session, user_id, walk_in=False, member=member, referral=referral, read=(taken, existing)
    )


async def take_slot(
    ctx: Context,
    session: Any,
    user_id: str,
    *,
    walk_in: bool,
    member: str | None = None,
    referral: Any = None,
    read: tuple[int, Any] | None = None,
) -> Response:
    """One slot of `session` for `user_id` (or their family `member`), exactly `capacity` of them whatever the
    concurrency: the bounded counter and the booking are one commit. Without a referral the slots held back
    for referrals stay free; with one, the referral is used in the same commit. A retry answers the booking
    already made. `read`: the slots taken and the booking as the caller read them (else read here, at once)."""
    sid, s = session.id, session.value
    booking_id = f"{sid}.{user_id}" if member is None else f"{sid}.{member}"
    bound = s["capacity"] if referral is not None else s["capacity"] - s.get("referral_reserve", 0)
    taken, existing = read or await asyncio.gather(
        ctx.storage.counter_get(f"taken:{sid}"), ctx.db.get("bookings", booking_id)
    )
    if existing is not None and existing.value["status"] != "cancelled":
        return Response.json(await _with_payment(ctx, existing.id, existing.value), status=200)
    if taken >= bound:
        return problem(409, "medical.full", "this session is fully booked")
    # a lost race leaves a gap in the numbers, never a repeat; the fee is asked meanwhile
    number, (fee, waived) = await asyncio.gather(
        ctx.storage.counter_add(f"numbers:{sid}", 1),
        fee_for(ctx, s) if member is None else _fee(s["fee_fen"]),
    )
    value = {
        "session": sid,
        "user_id": user_id,
        "day": s["day"],
        "half": s["half"],
        "institution": s["institution"],
        "department": s["department"],
        "doctor": s["doctor"],
        "number": number,
        "status": "booked",
        "fee_fen": fee,
        "waived": waived,
        "walk_in": walk_in,
        "payment_id": None,
        "member": member,
        "referral": referral.id if referral is not None else None,
        "cancel_hours": s.get("cancel_hours", CANCEL_HOURS),
    }
    try:
        async with ctx.db.transaction() as tx:
            tx.counter_add(f"taken:{sid}", 1, max=bound)
            if referral is not None:  # used once: a second booking with it conflicts here
                tx.update("referrals", referral.id, {**referral.value, "status": "used", "booking": booking_id},
                          expected_version=referral.version)  # fmt: skip
            if existing is None:
                tx.insert("bookings", value, id=booking_id)
            else:
                tx.update("bookings", booking_id, value, expected_version=existing.version)
    except CounterOutOfRange:
        return problem(409, "medical.full", "this session is fully booked")
    except VersionConflict:  # the same booking made twice at once (or its referral used meanwhile)
        again = await ctx.db.get("bookings", booking_id)
        if again is None:
            return problem(409, "medical.referral_not_for_this", "the referral was used meanwhile")
        return Response.json(await _with_payment(ctx, again.id, again.value), status=200)
    written = tx.results[-1]  # the booking's version: its payment is recorded without reading it again
    return Response.json(await _with_payment(ctx, booking_id, value, version=written), status=201)


async def _nothing() -> None:
    """The read not asked for, in a gather of reads."""


async def _fee(fee_fen: int) -> tuple[int, bool]:
    return fee_fen, False


_waive_ages: dict[str, tuple[float, int | None]] = {}
"""Each institution's `waive_age` as read by this worker, with when: read again after WAIVE_AGE_TTL_S."""
WAIVE_AGE_TTL_S = 60.0


async def fee_for(ctx: Context, session: dict[str, Any]) -> tuple[int, bool]:
    """The registration fee, waived from the institution's age on (by the consented birth date)."""
    if session["fee_fen"] == 0:
        return 0, False
    at, waive_age = _waive_ages.get(session["institution"], (0.0, None))
    if time.monotonic() - at > WAIVE_AGE_TTL_S:
        institution = await ctx.db.get("institutions", session["institution"])
        waive_age = institution.value.get("waive_age") if institution else None
        _waive_ages[session["institution"]] = (time.monotonic(), waive_age)
    if waive_age is None:
        return session["fee_fen"], False
    try:
        born = await ctx.user.scope("birth_date")
    except ConsentDenied:
        return session["fee_fen"], False
    if age_on(born, dt.date.fromisoformat(session["day"])) >= waive_age:
        return 0, True
    return session["fee_fen"], False


async def _with_payment(
    ctx: Context, booking_id: str, value: dict[str, Any], *, version: int | None = None
) -> dict[str, Any]:
    """The booking, charged once (the key is the booking and its number: a retry finds the same payment).
    `version`: the booking's, when the caller just wrote it (no read before recording the payment)."""
    if value["fee_fen"] > 0 and value["payment_id"] is None and value["status"] in OPEN:
        payment = await ctx.payments.charge(
            value["fee_fen"], "挂号费 registration fee", idempotency_key=f"{booking_id}.{value['number']}"
        )
        recorded = {**value, "payment_id": payment.id}
        try:
            if version is None:
                record = await ctx.db.get("bookings", booking_id)
                if record is not None and record.value["payment_id"] is None:
                    await ctx.db.update("bookings", booking_id, {**record.value, "payment_id": payment.id},
                                        expected_version=record.version)  # fmt: skip
            else:
                await ctx.db.update("bookings", booking_id, recorded, expected_version=version)
        except VersionConflict:
            pass  # changed meanwhile (checked in, cancelled): the same key finds the payment again
        value = recorded
    return {"id": booking_id, **value}


@app.get("/bookings")
async def my_bookings(ctx: Context, request: Request) -> dict[str, Any]:
    """The resident's bookings. With `?open=1` only those still open from today on (booked, waiting, called),
    each waiting one with `ahead` (how many checked-in patients are before it): what the page lists, in one
    call, where it asked for each booking before."""
    user_id = await ctx.user.id()
    where: dict[str, Any] = {"user_id": user_id}
    open_only = request.query.get("open") == "1"
    if open_only:
        where["day"] = {"gte": county_now(request).date().isoformat()}
    page = await ctx.db.find("bookings", where, order_by="day", limit=100)
    out = []
    for record in page.items:
        if open_only and record.value["status"] not in OPEN:
            continue
        booking = _doc(record)
        if open_only:
            waiting = record.value["status"] == "waiting"
            booking["ahead"] = await ahead_of(ctx, record.value) if waiting else None
        out.append(booking)
    return {"bookings": out}


@app.get("/bookings/{booking}")
async def my_booking(ctx: Context, request: Request) -> Response:
    """The booking and, once checked in, how many are ahead in the queue (the page polls it)."""
    record = await _own_booking(ctx, request.path_params["booking"])
    if record is None:
        return problem(404, "medical.no_such_booking", "no booking of yours with that id")
    answer = _doc(record)
    answer["ahead"] = await ahead_of(ctx, record.value) if record.value["status"] == "waiting" else None
    answer["calling"] = await calling(ctx, record.value["session"])
    return Response.json(answer)


@app.delete("/bookings/{booking}")
async def cancel_booking(ctx: Context, request: Request) -> Response:
    record = await _own_booking(ctx, request.path_params["booking"])
    if record is None or record.value["status"] != "booked":
        return problem(404, "medical.no_such_booking", "no open booking of yours with that id")
    hours = record.value.get("cancel_hours", CANCEL_HOURS)
    until = starts_at(record.value) - dt.timedelta(hours=hours)
    if county_now(request) > until:
        return problem(409, "medical.past_cutoff",
                       f"this booking could be cancelled until {until:%Y-%m-%d %H:%M}, {hours} h before the session")  # fmt: skip
    refunded = await cancel(ctx, record, "您取消了预约 you cancelled")
    return Response.json({"status": "cancelled", "refunded_fen": refunded})


async def cancel(ctx: Context, record: Any, why: str) -> int:
    """Cancel one booking: its slot back, its fee refunded if paid. Returns the amount refunded."""
    value = {**record.value, "status": "cancelled"}
    try:
        async with ctx.db.transaction() as tx:
            tx.update("bookings", record.id, value, expected_version=record.version)
            tx.counter_add(f"taken:{record.value['session']}", -1, min=0)
    except VersionConflict:
        return 0  # cancelled (or checked in) by someone else at the same moment
    return await refund(ctx, record.id, record.value, why)


async def refund(ctx: Context, booking_id: str, value: dict[str, Any], why: str) -> int:
    if value["payment_id"] is None:
        return 0
    payment = await ctx.payments.status(value["payment_id"])
    if payment.status != "succeeded":
        return 0
    done = await ctx.payments.refund(
        payment.id,
        payment.amount_fen,
        f"退挂号费 refund: {why}"[:100],
        idempotency_key=f"cancel.{booking_id}.{value['number']}",
    )
    return done.amount_fen


async def _own_booking(ctx: Context, booking_id: str) -> Any:
    record = await ctx.db.get("bookings", booking_id)
    if record is None or record.value["user_id"] != await ctx.user.id():
        return None
    return record


async def ahead_of(ctx: Context, booking: dict[str, Any]) -> int:
    where = {"session": booking["session"], "status": "waiting", "number": {"lt": booking["number"]}}
    return await ctx.db.count("bookings", where)


async def calling(ctx: Context, session_id: str) -> list[int]:
    page = await ctx.db.find("bookings", {"session": session_id, "status": "called"}, order_by="number")
    return [r.value["number"] for r in page.items]


@app.get("/sessions/{session}/screen")
async def screen(ctx: Context, request: Request) -> Response:
    """The clinic screen: the numbers being called and how many wait (no names, no ids)."""
    sid = request.path_params["session"]
    session = await ctx.db.get("sessions", sid)
    if session is None:
        return problem(404, "medical.no_such_session", "no session with that id")
    waiting = await ctx.db.count("bookings", {"session": sid, "status": "waiting"})
    return Response.json({"session": _doc(session), "calling": await calling(ctx, sid), "waiting": waiting})


@app.get("/screens")
async def screens(ctx: Context, request: Request) -> Response:
    """The clinic screens of an `institution` on a `day` (today by default), one call for all its open
    sessions: per session the numbers being called and how many wait (no names, no ids)."""
    institution = request.query.get("institution")
    if not institution:
        return problem(400, "medical.screens_need_an_institution", "give institution (and day)")
    day = request.query.get("day") or county_now(request).date().isoformat()
    sessions = await ctx.db.find("sessions", {"institution": institution, "day": day}, limit=100)
    calling: dict[str, list[int]] = {}
    waiting: dict[str, int] = {}
    after = None
    while True:  # the day's bookings at the institution, every page, grouped by session
        page = await ctx.db.find("bookings", {"day": day, "institution": institution}, limit=100, after=after)
        for record in page.items:
            sid, status = record.value["session"], record.value["status"]
            if status == "called":
                calling.setdefault(sid, []).append(record.value["number"])
            elif status == "waiting":
                waiting[sid] = waiting.get(sid, 0) + 1
        after = page.cursor
        if after is None:
            break
    return Response.json({"day": day, "screens": [
        {"session": s.id, "half": s.value["half"], "doctor_name": s.value["doctor_name"],
         "calling": sorted(calling.get(s.id, [])), "waiting": waiting.get(s.id, 0)}
        for s in sorted(sessions.items, key=lambda s: (s.value["half"], s.value["doctor"]))
        if s.value["status"] == "open"
    ]})  # fmt: skip


# ---- family members and referrals ------------------------------------------------------------------------


@app.post("/family")
async def add_member(ctx: Context, request: Request) -> Response:
    """A family member the resident books for (a child, an elderly parent), with their consent recorded."""
    new = request.json(Member)
    user_id = await ctx.user.id()
    if user_id is None:
        return problem(401, "medical.sign_in", "sign in first")
    if not new.consent:
        return problem(400, "medical.member_consent", "booking for a family member needs their consent")
    if not 1 <= len(new.name) <= 20 or new.relation not in ("child", "parent", "spouse", "other"):
        return problem(
            400, "medical.bad_member", "a name of 1-20 characters; relation child, parent, spouse, other"
        )
    if await ctx.db.count("members", {"user_id": user_id}) >= 10:
        return problem(409, "medical.too_many_members", "at most 10 family members")
    value = {"user_id": user_id, "name": new.name, "relation": new.relation,
             "consent_recorded_at": int(time.time())}  # fmt: skip
    written = await ctx.db.insert("members", value)
    await ctx.log.info("family member consent recorded", member=written.id, relation=new.relation)
    return Response.json({"id": written.id, **value}, status=201)


@app.get("/family")
async def members(ctx: Context, request: Request) -> dict[str, Any]:
    page = await ctx.db.find("members", {"user_id": await ctx.user.id()}, limit=10)
    return {"members": [_doc(r) for r in page.items]}


@app.get("/referrals")
async def my_referrals(ctx: Context, request: Request) -> dict[str, Any]:
    page = await ctx.db.find("referrals", {"user_id": await ctx.user.id()}, limit=100)
    return {"referrals": [_doc(r) for r in page.items]}


@app.post("/doctor/bookings/{booking}/refer")
async def refer(ctx: Context, request: Request) -> Response:
    """Two-way referral: a township doctor refers the patient up to a county department, a county doctor back
    to a township centre for follow-up; the resident books it with priority (the slots held back)."""
    body = request.json(Referral)
    record = await _doctors_booking(ctx, request.path_params["booking"])
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


# ---- schedulers: publish, change, cancel sessions of their institution ----------------------------------


@app.post("/staff/sessions")
async def publish(ctx: Context, request: Request) -> Response:
    new = request.json(NewSession)
    if (
        new.half not in STARTS
        or not 1 <= new.capacity <= 500
        or not 0 <= new.fee_fen <= 100_000
        or not 0 <= new.cancel_hours <= 72
    ):
        return problem(
            400,
            "medical.bad_session",
            "half is am or pm, capacity 1-500, fee 0-100000 fen, cancel_hours 0-72",
        )
    doctor = await ctx.db.get("doctors", new.doctor)
    if doctor is None:
        return problem(404, "medical.no_such_doctor", "no doctor with that id")
    if not await _holds(ctx, "scheduler", doctor.value["institution"]):
        return problem(403, "medical.other_institution", "you schedule another institution")
    sid = f"{new.doctor}.{new.day.isoformat()}.{new.half}"
    value = {
        "institution": doctor.value["institution"],
        "department": doctor.value["department"],
        "doctor": new.doctor,
        "doctor_name": doctor.value["name"],
        "day": new.day.isoformat(),
        "half": new.half,
        "capacity": new.capacity,
        "fee_fen": new.fee_fen,
        "walk_in": new.walk_in,
        "referral_reserve": min(max(new.referral_reserve, 0), new.capacity),
        "cancel_hours": new.cancel_hours,
        "status": "open",
    }
    try:
        await ctx.db.insert("sessions", value, id=sid)
    except VersionConflict:
        return problem(409, "medical.session_exists", "that doctor already has that session")
    await ctx.log.info("session published", session=sid)
    return Response.json({"id": sid, **value}, status=201)


@app.put("/staff/sessions/{session}")
async def change(ctx: Context, request: Request) -> Response:
    changes = request.json(SessionChange)
    record = await ctx.db.get("sessions", request.path_params["session"])
    if record is None or record.value["status"] != "open":
        return problem(404, "medical.no_such_session", "no open session with that id")
    if not await _holds(ctx, "scheduler", record.value["institution"]):
        return problem(403, "medical.other_institution", "you schedule another institution")
    value = dict(record.value)
    for field in ("capacity", "fee_fen", "walk_in", "cancel_hours"):
        if getattr(changes, field) is not None:
            value[field] = getattr(changes, field)
    if (
        not 0 <= value.get("cancel_hours", CANCEL_HOURS) <= 72
        or not 0 <= value["fee_fen"] <= 100_000
        or value["capacity"] > 500
    ):
        return problem(400, "medical.bad_session", "capacity up to 500, fee 0-100000 fen, cancel_hours 0-72")
    taken = await ctx.storage.counter_get(f"taken:{record.id}")
    if value["capacity"] < taken:
        return problem(409, "medical.capacity_below_bookings", f"{taken} are booked already")
    try:
        version = await ctx.db.update("sessions", record.id, value, expected_version=record.version)
    except VersionConflict:
        return problem(409, "medical.changed", "the session changed meanwhile: read it again")
    return Response.json({"id": record.id, **value, "version": version})


@app.post("/staff/sessions/{session}/cancel")
async def cancel_session(ctx: Context, request: Request) -> Response:
    """Cancel a session: every booked resident is told and refunded."""
    record = await ctx.db.get("sessions", request.path_params["session"])
    if record is None:
        return problem(404, "medical.no_such_session", "no session with that id")
    if not await _holds(ctx, "scheduler", record.value["institution"]):
        return problem(403, "medical.other_institution", "you schedule another institution")
    if record.value["status"] == "open":
        await ctx.db.update("sessions", record.id, {**record.value, "status": "cancelled"})
    told = refunded = 0
    for status in ("booked", "waiting"):  # a retried cancel finishes what a failed one left
        while True:
            page = await ctx.db.find("bookings", {"session": record.id, "status": status}, limit=50)
            if not page.items:
                break
            for booking in page.items:
                refunded += await cancel(ctx, booking, "门诊停诊 the session was cancelled")
                await ctx.notify.send(
                    "门诊停诊 Session cancelled",
                    f"{record.value['doctor_name']} {booking.value['day']} {booking.value['half']}: "
                    "停诊, 挂号费已退 the session is cancelled; your fee is refunded",
                    user_id=booking.value["user_id"],
                )
                told += 1
    return Response.json({"status": "cancelled", "told": told, "refunded_fen": refunded})


async def _holds(ctx: Context, role: str, institution: str) -> bool:
    return (await ctx.user.staff()).has(role, f"institution:{institution}")


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
    # the code's colour comes with the scan (the resident's `health_color` consent), so a terminal waits on
    # two round trips: today's bookings, then the check-in beside who is ahead (docs/benchmarks.md, check-in)
    colour = event.data.health_color
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
    name = _department_names.get(value["department"])
    if name is None:
        department = await ctx.db.get("departments", value["department"])
        name = _department_names[value["department"]] = (
            department.value["name"] if department else value["department"]
        )
    # who is ahead does not depend on this booking's own check-in: both at once
    ahead, _ = await asyncio.gather(ahead_of(ctx, value), checked_in or asyncio.sleep(0))
    return {"lines": [
        name,
        f"{value['half'].upper()} 序号 No. {value['number']}",
        f"前面 {ahead} 人 {ahead} ahead",
    ]}  # fmt: skip


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


# ---- doctors: the queue, no-shows, finishing a visit with an e-prescription -------------------------------


@app.post("/doctor/sessions/{session}/next")
async def call_next(ctx: Context, request: Request) -> Response:
    session = await ctx.db.get("sessions", request.path_params["session"])
    if session is None:
        return problem(404, "medical.no_such_session", "no session with that id")
    if not await _holds(ctx, "doctor", session.value["institution"]):
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
    record = await _doctors_booking(ctx, request.path_params["booking"])
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
    record = await _doctors_booking(ctx, request.path_params["booking"])
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


async def _doctors_booking(ctx: Context, booking_id: str) -> Any:
    record = await ctx.db.get("bookings", booking_id)
    if record is None:
        return problem(404, "medical.no_such_booking", "no booking with that id")
    if not await _holds(ctx, "doctor", record.value["institution"]):
        return problem(403, "medical.other_institution", "you work at another institution")
    return record


# ---- the health authority: counts, never people -----------------------------------------------------------


@app.get("/authority/day/{day}")
async def day_figures(ctx: Context, request: Request) -> dict[str, Any]:
    """Per institution, the day's bookings (every status) and the fees booked; no names, no ids."""
    day = request.path_params["day"]
    groups = await ctx.db.aggregate("bookings", "institution", where={"day": day}, sum="fee_fen")
    await ctx.log.info("authority read the day's figures", day=day)
    return {
        "day": day,
        "institutions": [{"institution": g.key, "bookings": g.count, "fees_fen": g.sum} for g in groups],
    }


# ---- jobs: tomorrow's reminders; demo data for `yima dev` --------------------------------------------------


@app.job("remind")
async def remind(ctx: Context, job: JobEvent) -> None:
    tomorrow = (job.scheduled_at.astimezone(COUNTY_TIME) + dt.timedelta(days=1)).date().isoformat()
    after = None
    while True:
        page = await ctx.db.find("bookings", {"day": tomorrow}, limit=100, after=after)
        for booking in page.items:
            if booking.value["status"] != "booked":
                continue
            try:  # at least once: one reminder per booking, whatever the retries
                await ctx.storage.put(f"reminded:{booking.id}", job.job_id, expected_version=0)
            except VersionConflict:
                continue
            start = STARTS[booking.value["half"]].strftime("%H:%M")
            await ctx.notify.send(
                "明日就诊 Visit tomorrow",
                f"{tomorrow} {start} 序号 No. {booking.value['number']}: 请带好一码 bring your code",
                user_id=booking.value["user_id"],
            )
        after = page.cursor
        if after is None:
            return


@app.job("seed")
async def seed_demo(ctx: Context, job: JobEvent) -> None:
    """Demo institutions, departments, doctors and a week of sessions (yima dev runs it once)."""
    first = job.scheduled_at.astimezone(COUNTY_TIME).date()
    documents = list(seed.documents(first))
    for at in range(0, len(documents), 50):  # one commit per 50 documents
        batch = documents[at : at + 50]
        try:
            async with ctx.db.transaction() as tx:
                for collection, doc_id, value in batch:
                    tx.insert(collection, value, id=doc_id)
        except VersionConflict:  # seeded before (a rerun, another day): each one that is missing
            for collection, doc_id, value in batch:
                try:
                    await ctx.db.insert(collection, value, id=doc_id)
                except VersionConflict:
                    pass


def _doc(record: Any) -> dict[str, Any]:
    return {"id": record.id, **record.value}
