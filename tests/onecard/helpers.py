"""Shared steps for one-card tests: a resident with a linked one-card, funding it through the real top-up path."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from server.onecard.payments.adapters import LocalPaymentProvider
from tests.conftest import AppClient, Session, login, valid_id_number


def card_number() -> str:
    return secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") + "".join(
        secrets.choice("0123456789") for _ in range(8)
    )


def id_number() -> str:
    birth = f"19{secrets.randbelow(80) + 20}{secrets.randbelow(12) + 1:02d}{secrets.randbelow(28) + 1:02d}"
    return valid_id_number(birth=birth, seq=f"{secrets.randbelow(1000):03d}")


@dataclass
class Resident:
    session: Session
    card_number: str

    @property
    def headers(self) -> dict[str, str]:
        return self.session.headers

    @property
    def account_id(self) -> int:
        return self.session.account_id


async def verified_with_id(client: AppClient) -> tuple[Session, str]:
    s = await login(client)
    number = id_number()
    r = await client.put("/v1/me/identity", json={"name": "张三丰", "id_number": number}, headers=s.headers)
    assert r.status_code == 200, r.text
    return s, number


async def verified(client: AppClient) -> Session:
    return (await verified_with_id(client))[0]


async def issue_card(client: AppClient, id_number: str) -> str:
    """A card the issuer gave this identity, recorded as `yima onecard import-cards` does."""
    number = card_number()
    async with client.app.state.core.db.transaction() as conn:
        await client.app.state.onecard.record_issued_card(conn, id_number, number)
    return number


async def resident_with_card(client: AppClient) -> Resident:
    s, identity = await verified_with_id(client)
    number = await issue_card(client, identity)
    r = await client.post("/v1/me/onecard", json={"ss_card_number": number}, headers=s.headers)
    assert r.status_code == 200, r.text
    return Resident(s, number)


async def balance(client: AppClient, resident: Resident) -> int:
    r = await client.get("/v1/me/onecard", headers=resident.headers)
    assert r.status_code == 200, r.text
    return int(r.json()["balance_fen"])


async def fund(client: AppClient, resident: Resident, amount_fen: int) -> str:
    """Top up through the real path with the in-process provider: order, payment, signed notification."""
    provider = client.app.state.onecard.payments
    assert isinstance(provider, LocalPaymentProvider)
    r = await client.post(
        "/v1/me/onecard/topups",
        json={"amount_fen": amount_fen},
        headers={**resident.headers, "Idempotency-Key": "fund-" + secrets.token_hex(8)},
    )
    assert r.status_code == 201, r.text
    order_no = r.json()["order_no"]
    provider.simulator.transport = httpx.ASGITransport(app=client.app)
    provider.simulator.pay(order_no)
    attempts = await provider.simulator.deliver_due()
    assert attempts and all(a.delivered for a in attempts), attempts
    return str(order_no)


async def wallet_check(pool: Any, resident: Resident) -> tuple[int, int]:
    """(materialised balance, sum of the wallet's postings): double entry says they are equal."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            """SELECT w.balance_fen, (SELECT coalesce(sum(amount_fen), 0) FROM ledger_postings
                                      WHERE ledger_account_id = w.id) AS postings
               FROM onecard_accounts o JOIN ledger_accounts w ON w.id = o.wallet_id
               WHERE o.owner_account_id = $1""",
            resident.account_id,
        )
    return int(row["balance_fen"]), int(row["postings"])
