"""Bookings: residents book a slot (its fee charged once, waived at 65), for themselves or a family member,
see their place in the queue and cancel with a refund."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import msgspec
from common import CANCEL_HOURS, OPEN, age_on, ahead_of, app, as_doc, calling, county_now, problem, starts_at
from yima_sdk import ConsentDenied, Context, CounterOutOfRange, Request, Response, VersionConflict


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
    `version`: the booking's, when the caller just wrote it (no read before recording the payment). The
    payment is recorded only on the booking still open under that number: one cancelled meanwhile (or
    booked again, under a new number) has the payment withdrawn, and refunded if already confirmed."""
    if value["fee_fen"] == 0 or value["payment_id"] is not None or value["status"] not in OPEN:
        return {"id": booking_id, **value}
    payment = await ctx.payments.charge(
        value["fee_fen"], "挂号费 registration fee", idempotency_key=f"{booking_id}.{value['number']}"
    )
    now = value
    while True:  # each conflict is a step of the booking's short life (paid, checked in, cancelled...)
        if version is None:
            record = await ctx.db.get("bookings", booking_id)
            if record is None:
                break
            now, version = record.value, record.version
        if now["number"] != value["number"] or now["status"] not in OPEN:
            break
        if now["payment_id"] is not None:  # recorded by a retry of the same booking
            return {"id": booking_id, **now}
        recorded = {**now, "payment_id": payment.id}
        try:
            await ctx.db.update("bookings", booking_id, recorded, expected_version=version)
        except VersionConflict:
            version = None
            continue
        return {"id": booking_id, **recorded}
    # not payable any more: the resident can no longer pay it, or has it back if they paid meanwhile
    refunded = await refund(
        ctx, booking_id, {**value, "payment_id": payment.id}, "预约已取消 booking cancelled"
    )
    if refunded and version is not None and now["number"] == value["number"] and now["payment_id"] is None:
        try:  # the fee taken and given back shows on the cancelled booking, as a cancel after paying does
            await ctx.db.update(
                "bookings", booking_id, {**now, "payment_id": payment.id}, expected_version=version
            )
            now = {**now, "payment_id": payment.id}
        except VersionConflict:
            pass  # booked again meanwhile: the new booking owes its own fee
    return {"id": booking_id, **now}


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
        booking = as_doc(record)
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
    answer = as_doc(record)
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
    """Give the fee of a cancelled booking back: a fee still waiting for the resident is withdrawn (they can
    no longer pay it), a paid one refunded. Returns the amount refunded."""
    if value["payment_id"] is None:
        return 0
    payment = await ctx.payments.cancel(value["payment_id"])
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


# ---- family members ---------------------------------------------------------------------------------------


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
    return {"members": [as_doc(r) for r in page.items]}
