"""The pharmacist's sales: selling within the rules (the 7-day ledger in the sale's own commit), filling an
e-prescription once, voiding and refunding; and how a sale reads from the records that follow it. A void or a
refund only adds records (its own, the negative registrations, a release of the e-prescription it filled): the
ledger, the sale and its redemption are never edited or deleted for it."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from common import DOC_ID, MEDICAL, app, county_day, problem, rules, still_bought
from yima_sdk import Context, Request, Response, VersionConflict

TICKET_S = 30 * 60
"""A scan names the resident to a sale at that pharmacy for 30 minutes."""
FILLS = 20
"""How often one e-prescription may be filled (each fill after a void or refund of the last is a new one)."""


class Item(msgspec.Struct, forbid_unknown_fields=True):
    drug: str
    qty: int = 1


class NewSale(msgspec.Struct, forbid_unknown_fields=True):
    pharmacy: str
    ticket: int
    items: list[Item]
    key: str
    """The till's idempotency key: a retried sale answers the sale made."""
    prescription: str | None = None
    """The e-prescription's QR payload (a pass of the medical visits app shared with this app)."""


class Undo(msgspec.Struct, forbid_unknown_fields=True):
    reason: str = ""


@app.post("/pharmacist/sales")
async def sell(ctx: Context, request: Request) -> Response:
    new = request.json(NewSale)
    if not await _works_at(ctx, new.pharmacy):
        return problem(403, "medicine.other_pharmacy", "you sell at another pharmacy")
    if not new.items or len(new.items) > 10 or not 1 <= len(new.key) <= 60:
        return problem(400, "medicine.bad_sale", "1-10 items and a key of 1-60 characters")
    sale_id = f"{new.pharmacy}.{new.key}"
    if not DOC_ID.fullmatch(sale_id):
        return problem(400, "medicine.bad_sale", "the key is ASCII letters, digits and _.:-")
    done = await ctx.db.get("sales", sale_id)
    if done is not None:
        return Response.json(await sale_view(ctx, done), status=200)
    ticket = await ctx.db.get("tickets", f"{new.pharmacy}.{new.ticket}")
    now = time.time()
    if ticket is None:
        return problem(404, "medicine.no_such_ticket", "scan the resident's code first")
    if ticket.value["at"] < now - TICKET_S:
        return problem(409, "medicine.ticket_expired", "the scan is over 30 minutes old: scan again")
    user_id, colour = ticket.value["user_id"], ticket.value["colour"]
    lines = []
    for item in new.items:
        drug = await ctx.db.get("drugs", item.drug) if DOC_ID.fullmatch(item.drug) else None
        if drug is None:
            return problem(404, "medicine.no_such_drug", f"no drug {item.drug[:40]!r} in the catalogue")
        if not 1 <= item.qty <= 20:
            return problem(400, "medicine.bad_sale", "1-20 boxes of a drug")
        lines.append({"drug": item.drug, "qty": item.qty, **drug.value})
    current = await rules(ctx)
    watched: dict[str, int] = {}
    for line in lines:
        if line["watched"] and current["watched"]:
            watched[line["watched"]] = watched.get(line["watched"], 0) + line["qty"]
    if watched and colour == "yellow":
        return problem(409, "medicine.code_yellow", "a yellow code may not buy watched classes now")
    rx = None
    if any(line["kind"] == "rx" for line in lines):
        checked = await check_prescription(ctx, new.prescription, user_id, lines)
        if isinstance(checked, Response):
            return checked
        rx = checked
    items = [{"drug": li["drug"], "name": li["name"], "qty": li["qty"], "price_fen": li["price_fen"],
              "kind": li["kind"], "watched": li["watched"] if current["watched"] else None} for li in lines]  # fmt: skip
    sale = {
        "kind": "sale",
        "sale": sale_id,
        "user_id": user_id,
        "pharmacy": new.pharmacy,
        "items": items,
        "total_fen": sum(i["qty"] * i["price_fen"] for i in items),
        "prescription": None,  # the redemption it takes: the e-prescription's id (`<id>.<n>` after n returns)
        "at": int(now),
        "day": county_day(now),
    }
    for _ in range(
        8
    ):  # two tills selling to the same resident at once: one commit wins, the other reads again
        try:
            async with ctx.db.transaction() as tx:
                if rx is not None:
                    slot, filled = await redemption_of(tx.get, rx)
                    if filled is not None:
                        raise Refused("medicine.prescription_filled",
                                      f"this e-prescription was filled at {filled.value['pharmacy']}")  # fmt: skip
                    if slot is None:
                        raise Refused("medicine.prescription_filled",
                                      f"this e-prescription was filled and returned {FILLS} times")  # fmt: skip
                    sale["prescription"] = slot
                for kind, boxes in watched.items():
                    await take_from_ledger(ctx, tx, user_id, kind, boxes, sale_id, now, current)
                tx.insert("sales", sale, id=sale_id)
                if rx is not None:
                    tx.insert("redemptions", {"kind": "filled", "prescription": rx, "user_id": user_id,
                                              "pharmacy": new.pharmacy, "sale": sale_id, "at": int(now)},
                              id=sale["prescription"])  # fmt: skip
                for n, item in enumerate(i for i in items if i["watched"]):
                    tx.insert(
                        "registrations", registration(sale, item, item["qty"], "sale"), id=f"{sale_id}.{n}"
                    )
        except Refused as refused:  # raised in the block: nothing of the sale is written
            if rx is not None and (where := await filled_at(ctx, rx)) is not None:
                # filled elsewhere a moment ago (and its boxes counted): that is the reason that matters
                return problem(409, "medicine.prescription_filled",
                               f"this e-prescription was filled at {where}")  # fmt: skip
            return problem(409, refused.code, refused.message)
        except VersionConflict:
            if (made := await ctx.db.get("sales", sale_id)) is not None:
                return Response.json(await sale_view(ctx, made), status=200)  # the same sale, retried at once
            if rx is not None and (where := await filled_at(ctx, rx)) is not None:
                return problem(409, "medicine.prescription_filled",
                               f"this e-prescription was filled at {where}")  # fmt: skip
            continue
        await ctx.log.info("sale", sale=sale_id, total_fen=sale["total_fen"], watched=sorted(watched))
        return Response.json({"id": sale_id, **sale, "status": "awaiting_payment"}, status=201)
    return problem(409, "medicine.busy", "the resident's purchases are changing: try again")


class Refused(Exception):
    """Raised inside the sale's transaction, which discards its writes: the answer's code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code)
        self.code, self.message = code, message


async def take_from_ledger(
    ctx: Context,
    tx: Any,
    user_id: str,
    kind: str,
    boxes: int,
    sale_id: str,
    now: float,
    current: dict[str, Any],
) -> None:
    """Add `boxes` of `kind` to the resident's 7-day ledger in the sale's commit; Refused past the limit. The
    entries of voided or refunded sales do not count (still_bought) and are dropped as the ledger is written;
    a void read a moment too late only refuses a sale that could have been made, never the other way."""
    ledger_id = f"{user_id}.{kind}"
    ledger = await tx.get("ledgers", ledger_id)
    entries = await still_bought(ctx, ledger.value["entries"], now) if ledger else []
    limit = current["limits"].get(kind, 0)
    bought = sum(e[2] for e in entries)
    if bought + boxes > limit:
        raise Refused(
            "medicine.limit_reached",
            f"{limit} boxes of {kind} per 7 days per person: {bought} bought, {boxes} asked",
        )
    value = {"user_id": user_id, "class": kind, "entries": [*entries, [sale_id, int(now), boxes]]}
    if ledger is None:
        tx.insert("ledgers", value, id=ledger_id)
    else:
        tx.update("ledgers", ledger_id, value, expected_version=ledger.version)


def registration(sale: dict[str, Any], item: dict[str, Any], boxes: int, kind: str) -> dict[str, Any]:
    return {"sale": sale["sale"], "day": sale["day"], "class": item["watched"], "pharmacy": sale["pharmacy"],
            "user_id": sale["user_id"], "drug": item["drug"], "boxes": boxes, "kind": kind}  # fmt: skip


async def check_prescription(
    ctx: Context, payload: str | None, user_id: str, lines: list[dict[str, Any]]
) -> str | Response:
    """The redemption id of an e-prescription that is the resident's and covers every prescription-only
    item, or the refusal."""
    if not payload:
        return problem(409, "medicine.prescription_needed", "prescription-only drugs need an e-prescription")
    verdict = await ctx.credentials.verify(payload)
    if not verdict.valid:
        return problem(
            409, "medicine.prescription_invalid", f"the e-prescription is not valid: {verdict.reason}"
        )
    if verdict.kind != "app_pass" or verdict.issuer_app != MEDICAL:
        return problem(409, "medicine.prescription_invalid", "not an e-prescription of 一码就医")
    if verdict.user_id != user_id:
        return problem(409, "medicine.prescription_not_theirs", "the e-prescription is another resident's")
    prescribed = prescribed_items(verdict.data)
    for line in lines:
        if line["kind"] == "rx" and prescribed.get(line["drug"], 0) < line["qty"]:
            return problem(409, "medicine.not_prescribed", f"{line['drug']} x{line['qty']} is not prescribed")
    return f"{MEDICAL}.{verdict.pass_id}"


async def redemption_of(get: Callable[[str, str], Awaitable[Any]], rx: str) -> tuple[str | None, Any]:
    """The e-prescription's redemption records, read in order: `(its id, the record)` while it is filled,
    `(the id the next fill takes, None)` while it is free, `(None, None)` once filled and returned FILLS times.
    The first fill is `<rx>`, a fill after n returns `<rx>.<n>`; a return is a record `<redemption>.released`.
    With `tx.get` each read is checked at the sale's commit: two fills, or a fill and a return, cannot both
    pass on what the other changed."""
    for n in range(FILLS):
        slot = rx if n == 0 else f"{rx}.{n}"
        filled = await get("redemptions", slot)
        if filled is None:
            return slot, None
        if await get("redemptions", f"{slot}.released") is None:
            return slot, filled
    return None, None


async def filled_at(ctx: Context, rx: str) -> str | None:
    """The pharmacy the e-prescription is filled at now (None: never filled, or its sale voided or refunded)."""
    _, filled = await redemption_of(ctx.db.get, rx)
    return filled.value["pharmacy"] if filled is not None else None


def prescribed_items(data: dict[str, Any]) -> dict[str, int]:
    """The e-prescription's items (see /work/notes/prescription.md): `[[drug, boxes], ...]`."""
    out: dict[str, int] = {}
    for entry in data.get("items", []):
        if (
            isinstance(entry, list)
            and len(entry) == 2
            and isinstance(entry[0], str)
            and isinstance(entry[1], int)
        ):
            out[entry[0]] = out.get(entry[0], 0) + entry[1]
    return out


@app.get("/pharmacist/sales/{sale}")
async def pharmacist_sale(ctx: Context, request: Request) -> Response:
    record = await sale_named(ctx, request)
    if record is None or record.value["kind"] != "sale":
        return problem(404, "medicine.no_such_sale", "no sale with that id")
    if not await _works_at(ctx, record.value["pharmacy"]):
        return problem(403, "medicine.other_pharmacy", "you sell at another pharmacy")
    return Response.json(await sale_view(ctx, record))


@app.post("/pharmacist/sales/{sale}/void")
async def void(ctx: Context, request: Request) -> Response:
    """Void a sale not paid: one more record (and its releases); the watched boxes and the e-prescription are
    free again."""
    found = await _pharmacists_sale(ctx, request)
    if isinstance(found, Response):
        return found
    record, view = found
    if view["status"] in ("void", "refunded"):
        return Response.json(view)
    if view["status"] in ("paying", "pending_confirmation", "succeeded"):
        return problem(409, "medicine.paid", "the resident paid or is paying: refund it instead")
    # the void commits only while the resident's next payment attempt is unclaimed: a payment and a void at
    # the same moment end as one of them, never a charge on a voided sale
    guard = f"{record.id}.attempt.{view['attempt'] + 1}"
    return await undo(ctx, record, "void", None, request.json(Undo).reason if request.body else "", guard)


@app.post("/pharmacist/sales/{sale}/refund")
async def refund(ctx: Context, request: Request) -> Response:
    """Refund a paid sale in full: the money back to the resident's one-card, then one more record."""
    found = await _pharmacists_sale(ctx, request)
    if isinstance(found, Response):
        return found
    record, view = found
    if view["status"] in ("void", "refunded"):
        return Response.json(view)
    if view["status"] != "succeeded":
        return problem(409, "medicine.not_paid", f"the sale is {view['status']}: void it instead")
    given = await ctx.payments.refund(view["payment_id"], record.value["total_fen"], "退药 medicine returned",
                                      idempotency_key=f"refund.{record.id}")  # fmt: skip
    return await undo(
        ctx, record, "refund", given.amount_fen, request.json(Undo).reason if request.body else ""
    )


async def undo(
    ctx: Context, record: Any, kind: str, refunded: int | None, reason: str, guard: str | None = None
) -> Response:
    """Void or refund the sale in one commit of inserts only: the `void`/`refund` record, a release of the
    e-prescription it filled, a negative registration per watched item. Nothing is edited or deleted."""
    sale = record.value
    now = time.time()
    for _ in range(8):
        try:
            async with ctx.db.transaction() as tx:
                if guard is not None and await tx.get("sales", guard) is not None:
                    raise Refused("medicine.paid", "the resident is paying: refund it instead")
                tx.insert("sales", {"kind": kind, "sale": record.id, "user_id": sale["user_id"],
                                    "pharmacy": sale["pharmacy"], "refunded_fen": refunded,
                                    "reason": reason[:100], "at": int(now)}, id=f"{record.id}.{kind}")  # fmt: skip
                # the ledger is not written: its readers leave out the entries of an undone sale (still_bought)
                if sale["prescription"]:  # the e-prescription may be filled again (docs/miniapps/medicine.md)
                    tx.insert("redemptions", {"kind": "released", "redemption": sale["prescription"],
                                              "user_id": sale["user_id"], "pharmacy": sale["pharmacy"],
                                              "sale": record.id, "undo": kind, "at": int(now)},
                              id=f"{sale['prescription']}.released")  # fmt: skip
                for n, item in enumerate(i for i in sale["items"] if i["watched"]):
                    tx.insert("registrations", registration(sale, item, -item["qty"], kind),
                              id=f"{record.id}.{kind}.{n}")  # fmt: skip
        except Refused as refused:
            return problem(409, refused.code, refused.message)
        except VersionConflict:
            if await ctx.db.get("sales", f"{record.id}.{kind}") is not None:
                break  # undone by a retry at the same moment
            continue
        await ctx.log.info(kind, sale=record.id, refunded_fen=refunded)
        break
    return Response.json(await sale_view(ctx, record))


async def _pharmacists_sale(ctx: Context, request: Request) -> Response | tuple[Any, dict[str, Any]]:
    record = await sale_named(ctx, request)
    if record is None or record.value["kind"] != "sale":
        return problem(404, "medicine.no_such_sale", "no sale with that id")
    if not await _works_at(ctx, record.value["pharmacy"]):
        return problem(403, "medicine.other_pharmacy", "you sell at another pharmacy")
    return record, await sale_view(ctx, record)


async def sale_view(ctx: Context, record: Any) -> dict[str, Any]:
    """The sale with its status from the records that followed it: awaiting_payment, paying (an attempt
    claimed, its charge not yet recorded), the payment's status (pending_confirmation, succeeded, declined,
    failed), void or refunded."""
    records = (await ctx.db.find("sales", {"sale": record.id}, limit=100)).items
    follow = {r.value["kind"]: r.value for r in records if r.value["kind"] in ("void", "refund")}
    attempts = [r.value["attempt"] for r in records if r.value["kind"] == "attempt"]
    payments = {r.value["attempt"]: r.value for r in records if r.value["kind"] == "payment"}
    view = {"id": record.id, **record.value, "payment_id": None, "status": "awaiting_payment", "attempt": 0}
    if attempts:  # the latest attempt: a declined or failed payment may be followed by another
        view["attempt"] = latest = max(attempts)
        view["status"] = "paying"
        if latest in payments:
            view["payment_id"] = payments[latest]["payment_id"]
            view["status"] = (await ctx.payments.status(view["payment_id"])).status
    if "void" in follow:
        view["status"] = "void"
    if "refund" in follow:
        view["status"], view["refunded_fen"] = "refunded", follow["refund"]["refunded_fen"]
    return view


async def sale_named(ctx: Context, request: Request) -> Any:
    """The sale the path names, or None (an id that cannot be ours names none)."""
    sale_id = request.path_params["sale"]
    return await ctx.db.get("sales", sale_id) if DOC_ID.fullmatch(sale_id) else None


async def _works_at(ctx: Context, pharmacy: str) -> bool:
    return (await ctx.user.staff()).has("pharmacist", f"pharmacy:{pharmacy}")
