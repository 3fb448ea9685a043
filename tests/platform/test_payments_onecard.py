"""A mini-app's charge paid from a real one-card: the resident opens and funds the card through the top-up
path, the app asks for a payment through the gateway, the resident confirms it, and the wallet pays exactly once."""

from __future__ import annotations

from pathlib import Path

from server.onecard.errors import ChargeNotFound, RefundExceedsCharge
from server.platform import ports
from tests.conftest import login
from tests.onecard.helpers import balance, fund, resident_with_card, wallet_check
from tests.platform.conftest import Team, call, new_app_id, write_probe

FEE_FEN = 200  # what probe_app's POST /charge asks for


def test_the_platforms_payment_refusal_codes_are_the_ones_one_card_raises() -> None:
    """The platform names one-card's refusals by code (its port imports nothing of one-card): the same codes."""
    assert (ports.CHARGE_NOT_FOUND, ports.REFUND_EXCEEDS_CHARGE) == (
        ChargeNotFound.code,
        RefundExceedsCharge.code,
    )


async def test_confirmed_charge_debits_the_one_card_once_and_the_app_sees_it_paid(
    team: Team, tmp_path: Path
) -> None:
    app_id, _ = await team.ship(write_probe(tmp_path, new_app_id()))
    client = team.client
    reader = await resident_with_card(client)
    await fund(client, reader, 1_000)
    assert await balance(client, reader) == 1_000

    r = await call(client, reader.session, app_id, "POST", "/charge")
    assert r.status_code == 200, r.text
    payment = r.json()
    assert payment["status"] == "pending_confirmation"
    assert await balance(client, reader) == 1_000  # nothing moves before the resident says yes
    number = payment["id"].removeprefix("pay_")

    stranger = await resident_with_card(client)
    r = await client.post(f"/v1/me/payments/{number}/confirm", headers=stranger.headers)
    assert r.status_code == 404 and r.json()["code"] == "payment.not_found"
    assert await balance(client, reader) == 1_000

    r = await client.post(f"/v1/me/payments/{number}/confirm", headers=reader.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded" and r.json()["amount_fen"] == FEE_FEN
    assert await balance(client, reader) == 1_000 - FEE_FEN

    # the phone retries (lost answer): the same paid payment, no second debit
    again = await client.post(f"/v1/me/payments/{number}/confirm", headers=reader.headers)
    assert again.status_code == 200, again.text
    assert again.json() == r.json()
    assert await balance(client, reader) == 1_000 - FEE_FEN
    assert await wallet_check(client.app.state.core.db.pool, reader) == (800, 800)

    status = await call(client, reader.session, app_id, "GET", f"/charge/{payment['id']}")
    assert status.status_code == 200 and status.json() == {"status": "succeeded"}
    # the app charging again with the same key gets the same, already paid payment
    r = await call(client, reader.session, app_id, "POST", "/charge")
    assert r.json() == {"id": payment["id"], "status": "succeeded"}
    assert await balance(client, reader) == 1_000 - FEE_FEN
    # a declined-after-paid attempt cannot undo the charge
    r = await client.post(f"/v1/me/payments/{number}/decline", headers=reader.headers)
    assert r.status_code == 409 and r.json()["code"] == "payment.already_decided"


async def test_confirming_more_than_the_balance_fails_the_payment_and_charges_nothing(
    team: Team, tmp_path: Path
) -> None:
    app_id, _ = await team.ship(write_probe(tmp_path, new_app_id()))
    client = team.client
    reader = await resident_with_card(client)
    await fund(client, reader, FEE_FEN - 1)
    payment_id = (await call(client, reader.session, app_id, "POST", "/charge")).json()["id"]
    number = payment_id.removeprefix("pay_")
    r = await client.post(f"/v1/me/payments/{number}/confirm", headers=reader.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["failure"]) == ("failed", "onecard.insufficient_balance")
    assert await balance(client, reader) == FEE_FEN - 1
    status = await call(client, reader.session, app_id, "GET", f"/charge/{payment_id}")
    assert status.json() == {"status": "failed"}


async def test_a_payment_the_app_cancelled_cannot_be_confirmed_and_charges_nothing(
    team: Team, tmp_path: Path
) -> None:
    """A booking cancelled while its fee waits for the resident: the app withdraws the charge, and the
    resident's late confirmation is refused (409), the card untouched."""
    app_id, _ = await team.ship(write_probe(tmp_path, new_app_id()))
    client = team.client
    reader = await resident_with_card(client)
    await fund(client, reader, 1_000)
    payment_id = (await call(client, reader.session, app_id, "POST", "/charge")).json()["id"]
    r = await call(client, reader.session, app_id, "DELETE", f"/charge/{payment_id}")
    assert r.status_code == 200 and r.json() == {"status": "cancelled"}, r.text

    number = payment_id.removeprefix("pay_")
    r = await client.post(f"/v1/me/payments/{number}/confirm", headers=reader.headers)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "payment.already_decided" and r.json()["extra"] == {
        "payment_status": "cancelled"
    }
    assert await balance(client, reader) == 1_000
    mine = (await client.get("/v1/me/payments", headers=reader.headers)).json()
    assert [(p["id"], p["status"]) for p in mine] == [(int(number), "cancelled")]
    status = await call(client, reader.session, app_id, "GET", f"/charge/{payment_id}")
    assert status.json() == {"status": "cancelled"}


async def test_a_resident_without_a_one_card_cannot_pay(team: Team, tmp_path: Path) -> None:
    app_id, _ = await team.ship(write_probe(tmp_path, new_app_id()))
    resident = await login(team.client)
    r = await call(team.client, resident, app_id, "POST", "/charge")
    number = r.json()["id"].removeprefix("pay_")
    r = await team.client.post(f"/v1/me/payments/{number}/confirm", headers=resident.headers)
    assert r.status_code == 200 and r.json()["status"] == "failed", r.text
    assert r.json()["failure"] == "onecard.not_open"
    assert (await team.client.get("/v1/me/payments", headers=resident.headers)).json()[0][
        "status"
    ] == "failed"
