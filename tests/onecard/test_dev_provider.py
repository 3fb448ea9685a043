"""One-card under `yima dev`: a top-up's pay URL leads to the development cashier, and the `yima onecard
reconcile` command, a process of its own, reconciles against the same simulated provider as the server."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from server.onecard.service import CST
from server.settings import Mode
from tests.conftest import fresh_database, login_with_role, serve_tcp
from tests.onecard.helpers import resident_with_card

YIMA = str(Path(sys.executable).parent / "yima")


@pytest.mark.slow
async def test_dev_cashier_pays_and_the_cli_reconciles_against_the_servers_provider(settings, tmp_path):
    # A database of its own: the command reconciles a whole day, which other tests' top-ups must not share.
    async with fresh_database() as database_url:
        dev = msgspec.structs.replace(settings, mode=Mode.DEVELOPMENT, database_url=database_url)
        async with serve_tcp(dev) as client:
            resident = await resident_with_card(client)
            r = await client.post(
                "/v1/me/onecard/topups",
                json={"amount_fen": 500},
                headers={**resident.headers, "Idempotency-Key": "dev-cashier-1"},
            )
            assert r.status_code == 201, r.text
            order = r.json()
            assert order["pay_url"].startswith(f"{client.base_url}/v1/dev/sim/cashier/")
            cashier = await client.get(order["pay_url"])
            assert cashier.status_code == 200, cashier.text
            page = cashier.json()
            assert (page["order_no"], page["amount_fen"], page["state"]) == (
                order["order_no"],
                500,
                "pending",
            )
            paid = await client.post(page["pay"])
            assert paid.status_code == 200, paid.text
            again = await client.post(page["pay"])
            assert again.status_code == 409 and again.json()["code"] == "request.conflict"
            status = await client.get(f"/v1/me/onecard/topups/{order['order_no']}", headers=resident.headers)
            assert status.json()["credited"] is True
            unknown = await client.get("/v1/dev/sim/cashier/wx-no-such-order")
            assert unknown.status_code == 404 and unknown.json()["code"] == "request.not_found"

            day = dt.datetime.now(CST).date().isoformat()
            operator = await login_with_role(client, "operator")
            r = await client.get(f"/v1/admin/onecard/reconciliation?date={day}", headers=operator.headers)
            assert r.status_code == 200, r.text
            assert (r.json()["matched"], r.json()["mismatches"]) == (1, [])

            # The operator's command, beside the running server, as docs/onecard.md shows it.
            env = {k: v for k, v in os.environ.items() if not k.startswith("YIMA_")}
            env.update(
                YIMA_DATABASE_URL=database_url,
                YIMA_MODE="development",
                YIMA_MASTER_KEY=settings.master_key,
                YIMA_DATA_DIR=str(tmp_path),
            )
            done = await asyncio.to_thread(
                subprocess.run,
                [YIMA, "onecard", "reconcile", "--date", day],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout)
        assert (report["provider_count"], report["matched"], report["mismatches"]) == (1, 1, [])
