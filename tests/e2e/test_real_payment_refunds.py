"""A resident's payment list says what an app refunded, on a real `yima dev`: a payment the app gave part of back
shows `refunded_fen` and the refund (amount, time, the app's reason), one given back whole shows its whole amount,
a retried refund is listed once, and refunds racing past the payment's amount leave one refused and the list
agreeing with the money that came back to the one-card."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from server.seed import DEMO_RESIDENT_PHONE
from tests.e2e._real import (
    RealServer,
    eventually,
    fresh_database,
    private_folder,
    real_server,
    release_app,
    server_env,
    sign_in,
)

MANIFEST = """
id = "{app_id}"
name = "Refunds"
version = "1.0.0"
entry = "app:app"
capabilities = ["payments", "log"]
"""
SOURCE = '''
"""Charges and refunds on request: what a shop app does when it sells and takes back."""

from yima_sdk import App, Context, InvalidArgument, Request

app = App()


@app.post("/charges")
async def charge(ctx: Context, request: Request) -> dict:
    body = request.json()
    payment = await ctx.payments.charge(body["fen"], "一件商品 an item", body["key"])
    return {"id": payment.id, "status": payment.status}


@app.post("/refunds")
async def refund(ctx: Context, request: Request) -> dict:
    body = request.json()
    try:
        done = await ctx.payments.refund(body["payment_id"], body["fen"], body["reason"], body["key"])
    except InvalidArgument as exc:
        return {"refused": str(exc)}
    return {"amount_fen": done.amount_fen, "refunded_fen": done.refunded_fen}
'''


@dataclass
class Shop:
    server: RealServer
    app_id: str
    resident: httpx.Client

    def api(self, path: str, body: dict[str, object]) -> dict[str, object]:
        def attempt() -> httpx.Response:
            r = self.resident.post(f"/v1/miniapps/{self.app_id}/api{path}", json=body)
            assert r.status_code != 503, r.text  # the app's workers may still be starting
            return r

        r = eventually(attempt)  # each call names its idempotency key: sent again, it charges or refunds once
        assert r.status_code == 200, r.text
        return dict(r.json())

    def paid(self, fen: int) -> tuple[str, int]:
        """A payment of `fen` the resident confirmed: its app id (`pay_N`) and the resident's number N."""
        payment = self.api("/charges", {"fen": fen, "key": secrets.token_hex(8)})
        number = int(str(payment["id"]).removeprefix("pay_"))
        r = self.resident.post(f"/v1/me/payments/{number}/confirm")
        assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
        return str(payment["id"]), number

    def refund(self, payment_id: str, fen: int, reason: str, key: str | None = None) -> dict[str, object]:
        return self.api(
            "/refunds",
            {"payment_id": payment_id, "fen": fen, "reason": reason, "key": key or secrets.token_hex(8)},
        )

    def listed(self, number: int) -> dict[str, object]:
        r = self.resident.get("/v1/me/payments")
        assert r.status_code == 200, r.text
        [payment] = [p for p in r.json() if p["id"] == number]
        return dict(payment)

    def balance(self) -> int:
        r = self.resident.get("/v1/me/onecard")
        assert r.status_code == 200, r.text
        return int(r.json()["balance_fen"])


@pytest.fixture(scope="module")
def shop() -> Iterator[Shop]:
    with private_folder("yima-refunds-") as folder, fresh_database() as database_url:
        with real_server("dev", env=server_env(database_url, folder / "data", redis=False)) as server:
            app_id = f"test.r{secrets.token_hex(4)}.shop"
            app = Path(folder) / "shop"
            app.mkdir()
            (app / "miniapp.toml").write_text(MANIFEST.replace("{app_id}", app_id))
            (app / "app.py").write_text(SOURCE)
            release_app(server, app, sign_in(server, role="developer"), sign_in(server, role="operator"))
            resident = sign_in(server, DEMO_RESIDENT_PHONE)  # her one-card is open
            r = resident.post(
                "/v1/me/onecard/topups",
                json={"amount_fen": 10_000},
                headers={"Idempotency-Key": secrets.token_hex(8)},
            )
            assert r.status_code == 201, r.text
            order = r.json()
            cashier = resident.get(httpx.URL(order["pay_url"]).path).json()
            assert resident.post(httpx.URL(cashier["pay"]).path).status_code == 200
            eventually(lambda: resident.get(f"/v1/me/onecard/topups/{order['order_no']}").json()["credited"])
            yield Shop(server, app_id, resident)


def test_the_payment_list_shows_what_came_back_and_why(shop: Shop) -> None:
    payment_id, number = shop.paid(1200)
    before = shop.listed(number)
    assert before["status"] == "succeeded" and "refunded_fen" not in before and "refunds" not in before
    balance = shop.balance()

    key = secrets.token_hex(8)
    assert shop.refund(payment_id, 500, "缺货退款 out of stock", key) == {
        "amount_fen": 500,
        "refunded_fen": 500,
    }
    assert shop.refund(payment_id, 500, "缺货退款 out of stock", key)["refunded_fen"] == 500  # a retry
    after = shop.listed(number)
    assert after["status"] == "succeeded"  # it was charged; what came back is beside it
    assert after["refunded_fen"] == 500
    [refund] = after["refunds"]  # type: ignore[misc]
    assert (refund["amount_fen"], refund["reason"]) == (500, "缺货退款 out of stock")
    assert refund["refunded_at"] >= str(after["decided_at"])
    assert shop.balance() == balance + 500  # the money the list speaks of is on the card

    shop.refund(payment_id, 700, "整单退款 order cancelled")
    whole = shop.listed(number)
    assert whole["refunded_fen"] == whole["amount_fen"] == 1200
    assert [(f["amount_fen"], f["reason"]) for f in whole["refunds"]] == [  # type: ignore[union-attr]
        (500, "缺货退款 out of stock"),
        (700, "整单退款 order cancelled"),
    ]
    assert "refused" in shop.refund(payment_id, 1, "once more")
    assert shop.balance() == balance + 1200


def test_refunds_racing_past_the_amount_leave_one_refused_and_the_list_true(shop: Shop) -> None:
    payment_id, number = shop.paid(1000)
    balance = shop.balance()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: shop.refund(payment_id, 400, f"退款 {i}"), range(4)))
    given = [a for a in answers if "refused" not in a]
    assert len(given) == 2, answers  # 2 x 400 fit in 1000, a third would not
    listed = shop.listed(number)
    assert listed["refunded_fen"] == 800 and len(listed["refunds"]) == 2  # type: ignore[arg-type]
    assert shop.balance() == balance + 800
