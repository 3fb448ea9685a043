"""一码购药 Buying medicine (gov.guangde.medicine): the pharmacist scans the resident's Ankang code, sells within
the rules, fills e-prescriptions of the medical visits app once; the health authority switches the purchase
registration of watched classes on and off and reads it. On yima_sdk alone (docs/miniapps/medicine.md).

Data (ctx.db collections, declared with their indexes in miniapp.toml; records are added, never edited):
    pharmacies, drugs   the demo catalogue (seed.py): `kind` otc or rx, `watched` a class or null
    tickets             `<pharmacy>.<n>`: one scan at that pharmacy's terminal, naming the resident to the sale
    sales               `kind` sale, payment, void or refund; every record names its `sale`
    ledgers             `<resident>.<class>`: the resident's watched-class boxes of the last 7 days, read and
                        written in the sale's own commit, so the limit holds under any concurrency
    redemptions         `<issuer app>.<pass id>`: an e-prescription filled once, inserted in the sale's commit
    registrations       one per watched item sold (negative boxes for a void or refund): what the authority reads
    reads               the authority's reads of the registrations (who, what, when): the app's own audit
Storage: `rules` (the registration switch and limits), counters `tickets:<pharmacy>`.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import msgspec
import seed
from yima_sdk import App, ConsentDenied, Context, JobEvent, Request, Response, ScanEvent, VersionConflict
from yima_sdk.cron import COUNTY_TIME

app = App()

MEDICAL = "gov.guangde.medical"
WATCHED = ("antipyretic", "antiviral", "antibiotic", "cough")
CLASS_NAMES = {"antipyretic": "退热", "antiviral": "抗病毒", "antibiotic": "抗菌", "cough": "止咳"}
WINDOW_S = 7 * 24 * 3600
TICKET_S = 30 * 60
"""A scan names the resident to a sale at that pharmacy for 30 minutes."""
DEFAULT_RULES: dict[str, Any] = {"watched": True, "limits": dict.fromkeys(WATCHED, 2)}


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


class Rules(msgspec.Struct, forbid_unknown_fields=True):
    watched: bool
    limits: dict[str, int] = {}


class Undo(msgspec.Struct, forbid_unknown_fields=True):
    reason: str = ""


DAY = re.compile(r"(\d{4}-\d{2}-\d{2}){2}")
DOC_ID = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
"""What an id of ours looks like (a document id, with room for the suffixes of the records that follow)."""


def problem(status: int, code: str, message: str) -> Response:
    return Response.json({"code": code, "error": message}, status=status)


def county_day(at: float) -> str:
    return dt.datetime.fromtimestamp(at, COUNTY_TIME).date().isoformat()


async def rules(ctx: Context) -> dict[str, Any]:
    stored = await ctx.storage.get("rules")
    return stored if stored is not None else DEFAULT_RULES


def _doc(record: Any) -> dict[str, Any]:
    return {"id": record.id, **record.value}


# ---- anyone: pharmacies and the catalogue ---------------------------------------------------------------


@app.get("/pharmacies")
async def pharmacies(ctx: Context, request: Request) -> dict[str, Any]:
    return {"pharmacies": [_doc(r) for r in (await ctx.db.find("pharmacies", limit=100)).items]}


@app.get("/catalogue")
async def catalogue(ctx: Context, request: Request) -> dict[str, Any]:
    drugs = [_doc(r) for r in (await ctx.db.find("drugs", limit=100)).items]
    return {"drugs": drugs, "rules": await rules(ctx)}


# ---- the pharmacy terminal: may this resident buy, and what is limited ----------------------------------


@app.on_scan("pharmacy")
async def at_the_counter(ctx: Context, event: ScanEvent) -> dict[str, Any] | None:
    if event.data.mode == "offline":
        return None  # nobody waits at the counter for an uploaded scan
    unit = event.data.unit or ""
    if not unit.startswith("pharmacy:"):
        return {"lines": ["终端未绑定药房 Terminal has no pharmacy"]}
    pharmacy = unit.removeprefix("pharmacy:")
    if event.user_id is None:
        return {
            "lines": [
                "未使用一码购药 New to 一码购药",
                "仅非登记药 Unwatched OTC only",
                "请先打开一码购药 Open it once",
            ]
        }
    try:
        colour = await ctx.user.scope("health_color")
    except ConsentDenied:
        colour = None
    at = (event.data.scanned_at or dt.datetime.now(dt.UTC)).timestamp()
    if colour == "red":
        return {"lines": ["红码 Red code: 不可购药 No sale", "请去发热门诊 Go to a fever clinic"]}
    number = await ctx.storage.counter_add(f"tickets:{pharmacy}", 1)
    ticket = {"user_id": event.user_id, "pharmacy": pharmacy, "colour": colour, "at": int(at)}
    await ctx.db.insert("tickets", ticket, id=f"{pharmacy}.{number}")
    lines = [f"单号 Ticket {number}: 可购药 May buy", "处方药凭电子处方 Rx: e-prescription"]
    current = await rules(ctx)
    if not current["watched"]:
        lines.append("购药登记已关闭 No registration now")
    elif colour == "yellow":
        lines.append("黄码 Yellow: 四类药不可购 No watched")
    else:
        left = await watched_left(ctx, event.user_id, current, at)
        lines.append("7天余 left " + " ".join(f"{CLASS_NAMES[c]}{n}" for c, n in left.items()))
    if colour is None:
        lines.append("未授权码色 Colour not shared")
    return {"lines": lines}


async def watched_left(ctx: Context, user_id: str, current: dict[str, Any], at: float) -> dict[str, int]:
    left = {}
    for kind in WATCHED:
        ledger = await ctx.db.get("ledgers", f"{user_id}.{kind}")
        bought = in_window(ledger.value["entries"], at) if ledger else []
        left[kind] = max(current["limits"].get(kind, 0) - sum(e[2] for e in bought), 0)
    return left


def in_window(entries: list[list[Any]], at: float) -> list[list[Any]]:
    """The ledger entries `[sale, at, boxes]` of the 7 days before `at`."""
    return [e for e in entries if e[1] > at - WINDOW_S]


# ---- the pharmacist: a sale, filling an e-prescription, void and refund ---------------------------------


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
    redemption = None
    if any(line["kind"] == "rx" for line in lines):
        checked = await check_prescription(ctx, new.prescription, user_id, lines)
        if isinstance(checked, Response):
            return checked
        redemption = checked
    items = [{"drug": li["drug"], "name": li["name"], "qty": li["qty"], "price_fen": li["price_fen"],
              "kind": li["kind"], "watched": li["watched"] if current["watched"] else None} for li in lines]  # fmt: skip
    sale = {
        "kind": "sale",
        "sale": sale_id,
        "user_id": user_id,
        "pharmacy": new.pharmacy,
        "items": items,
        "total_fen": sum(i["qty"] * i["price_fen"] for i in items),
        "prescription": redemption,
        "at": int(now),
        "day": county_day(now),
    }
    for _ in range(
        8
    ):  # two tills selling to the same resident at once: one commit wins, the other reads again
        try:
            async with ctx.db.transaction() as tx:
                if redemption is not None and (filled := await tx.get("redemptions", redemption)) is not None:
                    raise Refused("medicine.prescription_filled",
                                  f"this e-prescription was filled at {filled.value['pharmacy']}")  # fmt: skip
                for kind, boxes in watched.items():
                    await take_from_ledger(tx, user_id, kind, boxes, sale_id, now, current)
                tx.insert("sales", sale, id=sale_id)
                if redemption is not None:
                    tx.insert("redemptions", {"user_id": user_id, "pharmacy": new.pharmacy, "sale": sale_id,
                                              "at": int(now)}, id=redemption)  # fmt: skip
                for n, item in enumerate(i for i in items if i["watched"]):
                    tx.insert(
                        "registrations", registration(sale, item, item["qty"], "sale"), id=f"{sale_id}.{n}"
                    )
        except Refused as refused:  # raised in the block: nothing of the sale is written
            if redemption is not None and (filled := await ctx.db.get("redemptions", redemption)) is not None:
                # filled elsewhere a moment ago (and its boxes counted): that is the reason that matters
                return problem(409, "medicine.prescription_filled",
                               f"this e-prescription was filled at {filled.value['pharmacy']}")  # fmt: skip
            return problem(409, refused.code, refused.message)
        except VersionConflict:
            if (made := await ctx.db.get("sales", sale_id)) is not None:
                return Response.json(await sale_view(ctx, made), status=200)  # the same sale, retried at once
            if redemption is not None and (filled := await ctx.db.get("redemptions", redemption)) is not None:
                return problem(409, "medicine.prescription_filled",
                               f"this e-prescription was filled at {filled.value['pharmacy']}")  # fmt: skip
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
    tx: Any, user_id: str, kind: str, boxes: int, sale_id: str, now: float, current: dict[str, Any]
) -> None:
    """Add `boxes` of `kind` to the resident's 7-day ledger in the sale's commit; Refused past the limit."""
    ledger_id = f"{user_id}.{kind}"
    ledger = await tx.get("ledgers", ledger_id)
    entries = in_window(ledger.value["entries"], now) if ledger else []
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
    record = await _sale(ctx, request)
    if record is None or record.value["kind"] != "sale":
        return problem(404, "medicine.no_such_sale", "no sale with that id")
    if not await _works_at(ctx, record.value["pharmacy"]):
        return problem(403, "medicine.other_pharmacy", "you sell at another pharmacy")
    return Response.json(await sale_view(ctx, record))


@app.post("/pharmacist/sales/{sale}/void")
async def void(ctx: Context, request: Request) -> Response:
    """Void a sale not paid: one more record; the watched boxes and the e-prescription are free again."""
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
                for item_kind in {i["watched"] for i in sale["items"] if i["watched"]}:
                    ledger = await tx.get("ledgers", f"{sale['user_id']}.{item_kind}")
                    if ledger is not None:
                        kept = [e for e in ledger.value["entries"] if e[0] != record.id]
                        tx.update("ledgers", ledger.id, {**ledger.value, "entries": kept},
                                  expected_version=ledger.version)  # fmt: skip
                if sale["prescription"]:
                    tx.delete("redemptions", sale["prescription"])
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
    record = await _sale(ctx, request)
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


async def _sale(ctx: Context, request: Request) -> Any:
    """The sale the path names, or None (an id that cannot be ours names none)."""
    sale_id = request.path_params["sale"]
    return await ctx.db.get("sales", sale_id) if DOC_ID.fullmatch(sale_id) else None


async def _works_at(ctx: Context, pharmacy: str) -> bool:
    return (await ctx.user.staff()).has("pharmacist", f"pharmacy:{pharmacy}")


# ---- residents: paying, their purchases and their e-prescriptions ---------------------------------------


@app.post("/sales/{sale}/pay")
async def pay(ctx: Context, request: Request) -> Response:
    """The resident pays a sale made to them: a one-card charge they confirm on their phone."""
    record = await _sale(ctx, request)
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
    filled = await ctx.db.find("redemptions", {"user_id": user_id}, limit=100)
    return {"purchases": sales, "prescriptions_filled": [_doc(r) for r in filled.items]}


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
    filled = await ctx.db.get("redemptions", f"{MEDICAL}.{verdict.pass_id}")
    return Response.json({
        "valid": True, "items": [[d, n] for d, n in prescribed_items(verdict.data).items()],
        "filled_at": filled.value["pharmacy"] if filled else None,
    })  # fmt: skip


# ---- the health authority: the registration switch and the registrations --------------------------------


@app.put("/authority/rules")
async def set_rules(ctx: Context, request: Request) -> Response:
    new = request.json(Rules)
    limits = {**DEFAULT_RULES["limits"], **new.limits}
    if set(limits) != set(WATCHED) or not all(0 <= n <= 100 for n in limits.values()):
        return problem(400, "medicine.bad_rules", f"limits are 0-100 boxes of {', '.join(WATCHED)}")
    value = {"watched": new.watched, "limits": limits}
    await ctx.storage.put("rules", value)
    await ctx.log.info("rules", by=await ctx.user.id(), watched=new.watched, limits=limits)
    return Response.json(value)


async def registrations_between(ctx: Context, request: Request) -> tuple[str, str, list[dict[str, Any]]]:
    today = county_day(time.time())
    first, last = request.query.get("from", today), request.query.get("to", today)
    rows: list[dict[str, Any]] = []
    after = None
    while True:
        page = await ctx.db.find("registrations", {"day": {"gte": first, "lte": last}}, order_by="day",
                                 limit=100, after=after)  # fmt: skip
        rows += [r.value for r in page.items if not request.query.get("class") or
                 r.value["class"] == request.query["class"]]  # fmt: skip
        after = page.cursor
        if after is None or len(rows) > 50_000:
            return first, last, rows


async def audited(ctx: Context, what: str, first: str, last: str, rows: int) -> None:
    """Each read of the registrations is one more record (and a log line): who read what, when."""
    reader = await ctx.user.id()
    at = int(time.time())
    await ctx.db.insert(
        "reads", {"reader": reader, "what": what, "from": first, "to": last, "rows": rows, "at": at}
    )
    await ctx.log.info("registrations read", reader=reader, what=what, first=first, last=last, rows=rows)


@app.get("/authority/registrations")
async def registrations(ctx: Context, request: Request) -> dict[str, Any]:
    """Watched-class boxes by class, day and pharmacy: purchases and residents (app-scoped ids, no ID numbers)."""
    first, last, rows = await registrations_between(ctx, request)
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in rows:
        group = groups.setdefault((row["day"], row["class"], row["pharmacy"]), {"boxes": 0, "sales": set()})
        group["boxes"] += row["boxes"]
        if row["kind"] == "sale":
            group["sales"].add(row["sale"])
    await audited(ctx, "summary", first, last, len(rows))
    return {"from": first, "to": last, "groups": [
        {"day": d, "class": c, "pharmacy": p, "boxes": g["boxes"], "sales": len(g["sales"])}
        for (d, c, p), g in sorted(groups.items())
    ]}  # fmt: skip


@app.get("/authority/registrations.csv")
async def registrations_csv(ctx: Context, request: Request) -> Response:
    """The registrations of the days asked, one row per watched item sold, voided or refunded, as a CSV
    download named after the days (`registrations-<from>-<to>.csv`)."""
    first, last, rows = await registrations_between(ctx, request)
    fields = ("day", "class", "pharmacy", "user_id", "drug", "boxes", "kind", "sale")
    await audited(ctx, "csv", first, last, len(rows))
    header = ["day", "class", "pharmacy", "resident", "drug", "boxes", "kind", "sale"]
    filename = f"registrations-{first}-{last}.csv" if DAY.fullmatch(first + last) else "registrations.csv"
    return Response.csv([header, *([r[f] for f in fields] for r in rows)], filename=filename)


@app.get("/authority/reads")
async def reads(ctx: Context, request: Request) -> dict[str, Any]:
    page = await ctx.db.find("reads", order_by="-at", limit=100)
    return {"reads": [_doc(r) for r in page.items]}


# ---- demo data: the seed job (yima dev) and the admin's route ------------------------------------------


async def load_demo(ctx: Context) -> int:
    """The demo pharmacies and catalogue in one commit, so nobody sees the pharmacies without the drugs; on a
    rerun (some there already) each one that is missing. How many documents were added."""
    documents = list(seed.documents())
    try:
        async with ctx.db.transaction() as tx:
            for collection, doc_id, value in documents:
                tx.insert(collection, value, id=doc_id)
        return len(documents)
    except VersionConflict:
        pass  # seeded before
    added = 0
    for collection, doc_id, value in documents:
        try:
            await ctx.db.insert(collection, value, id=doc_id)
            added += 1
        except VersionConflict:
            pass
    return added


@app.job("seed")
async def seed_demo(ctx: Context, job: JobEvent) -> None:
    await load_demo(ctx)


@app.post("/admin/seed")
async def seed_route(ctx: Context, request: Request) -> dict[str, Any]:
    return {"added": await load_demo(ctx)}
