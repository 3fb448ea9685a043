"""Uploaded offline scans reach the app at least once, through a server killed in between (issue 20): a senior's
offline ride is settled at the table's price by a real `yima dev`, which is killed with SIGKILL after the upload
committed and before the bus app heard of the ride (YIMA_SCAN_OUTBOX_HOLD_S holds the delivery back); restarted
on the same database, its outbox deliverer hands the ride to the app, which gives the senior's fare back, once.
While the bus app is suspended, a ride's event is put off without using up the app's tries, as the operator sees
with `yima scan-outbox list`; the senior's next ride, uploaded right after the app is resumed, waits behind it, and
both arrive in ride order."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import asyncpg

from server.seed import DEMO_OPERATOR_PHONE
from tests.conftest import random_phone
from tests.e2e._real import (
    eventually,
    fresh_database,
    kill_hard,
    private_folder,
    real_server,
    server_env,
    sign_in,
)
from tests.e2e.test_real_bus import (
    API,
    APP,
    bus_terminal,
    ride_codes_holder,
    rider_with_card,
    top_up,
)


def _outbox_rows(dsn: str) -> int:
    """Events still to deliver."""

    async def count() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM scan_outbox WHERE status = 'pending'"))
        finally:
            await conn.close()

    return asyncio.run(count())


def test_a_seniors_offline_refund_arrives_once_through_a_server_killed_before_the_app_heard() -> None:
    with private_folder() as folder, fresh_database() as dsn:
        env = server_env(
            dsn, folder / "data", redis=False, YIMA_DEV_FIRST_PARTY="1", YIMA_SCAN_OUTBOX_LEASE_S="10"
        )
        with real_server("dev", env=env | {"YIMA_SCAN_OUTBOX_HOLD_S": "3600"}) as server:
            operator = sign_in(server, DEMO_OPERATOR_PHONE)
            phone = random_phone()
            senior = rider_with_card(server, "19500301", folder, phone)  # 70 or more: rides free
            eventually(lambda: senior.get(f"{API}/lines").status_code == 200, limit_s=60)
            r = senior.put(f"/v1/me/consents/{APP}/birth_date", json={"granted": True})
            assert r.status_code == 200, r.text
            assert senior.get(f"{API}/me").status_code == 200
            top_up(senior, 2000)
            before = senior.get("/v1/me/onecard").json()["balance_fen"]
            line_1 = bus_terminal(server, operator, senior, "1", folder / "line-1.sqlite")
            try:
                holder = ride_codes_holder(senior)
                table_1 = line_1.fare("1")
                assert table_1 > 0
                decision = line_1.scan(holder.ride_code(line_1.now()), table_1)
                assert decision.result == "accept", decision
                assert line_1.upload_pending() == 1  # uploaded four times at once, settled once
            finally:
                line_1.close()
            # committed: the table's fare is taken, the ride's event waits in the outbox, the app has not heard
            assert senior.get("/v1/me/onecard").json()["balance_fen"] == before - table_1
            assert _outbox_rows(dsn) == 1
            rides = senior.get(f"{API}/rides").json()["rides"]
            assert [x for x in rides if x["mode"] == "offline"] == []
            kill_hard(server)

        with real_server("dev", env=env) as again:
            senior = sign_in(again, phone)  # the same resident, on the restarted server
            # the restarted server's deliverer hands the ride to the app, which gives the senior's fare back
            eventually(lambda: senior.get("/v1/me/onecard").json()["balance_fen"] == before, limit_s=60)
            eventually(lambda: _outbox_rows(dsn) == 0, limit_s=30)
            rides = senior.get(f"{API}/rides").json()["rides"]
            (ride,) = [x for x in rides if x["mode"] == "offline"]
            assert (ride["settled_fen"], ride["fare_fen"], ride["concession"]) == (table_1, 0, "senior_70")
            month = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m")
            entries = senior.get("/v1/me/onecard/statements", params={"month": month}).json()["entries"]
            assert [-e["amount_fen"] for e in entries if e["kind"] == "offline_ride"] == [table_1]
            assert [e["amount_fen"] for e in entries if e["kind"] == "refund"] == [table_1], entries
            assert senior.get("/v1/me/onecard").json()["balance_fen"] == before


def test_a_ride_uploaded_while_the_bus_app_is_suspended_is_put_off_not_given_up_and_the_next_waits_behind_it() -> (
    None
):
    with private_folder() as folder, fresh_database() as dsn:
        env = server_env(dsn, folder / "data", redis=False, YIMA_DEV_FIRST_PARTY="1")
        with real_server("dev", env=env) as server:
            operator = sign_in(server, DEMO_OPERATOR_PHONE)
            senior = rider_with_card(server, "19500301", folder, random_phone())  # 70 or more: rides free
            eventually(lambda: senior.get(f"{API}/lines").status_code == 200, limit_s=60)
            r = senior.put(f"/v1/me/consents/{APP}/birth_date", json={"granted": True})
            assert r.status_code == 200, r.text
            assert senior.get(f"{API}/me").status_code == 200
            top_up(senior, 2000)
            before = senior.get("/v1/me/onecard").json()["balance_fen"]
            line_1 = bus_terminal(server, operator, senior, "1", folder / "line-1.sqlite")

            def put_off() -> dict[str, object]:
                listed = server.yima("scan-outbox", "list", "--status", "pending", "--json")
                assert listed.returncode == 0, listed.stderr
                (row,) = json.loads(listed.stdout)
                assert row["deferred"] >= 2, row  # tried live, and again after a pause
                return dict(row)

            try:
                holder = ride_codes_holder(senior)
                table_1 = line_1.fare("1")
                r = operator.post(
                    f"/v1/admin/miniapps/{APP}/suspend", json={"reason": "e2e: a faulty release"}
                )
                assert r.status_code == 200, r.text
                decision = line_1.scan(holder.ride_code(line_1.now()), table_1)
                assert decision.result == "accept", decision
                assert line_1.upload_pending() == 1
                assert senior.get("/v1/me/onecard").json()["balance_fen"] == before - table_1
                first = eventually(put_off, limit_s=60)
                # none of the app's 10 tries used up
                assert (first["attempt"], first["last_error"]) == (0, "miniapp.suspended")

                r = operator.post(f"/v1/admin/miniapps/{APP}/resume")
                assert r.status_code == 200, r.text
                # the senior's next ride is uploaded at once, while the first still waits for its next try
                decision = line_1.scan(holder.ride_code(line_1.now()), table_1)
                assert decision.result == "accept", decision
                assert line_1.upload_pending() == 1
            finally:
                line_1.close()

            # the app hears both, the first first, and gives both fares back
            eventually(lambda: senior.get("/v1/me/onecard").json()["balance_fen"] == before, limit_s=90)
            eventually(lambda: _outbox_rows(dsn) == 0, limit_s=30)
            listed = server.yima("scan-outbox", "list", "--status", "delivered", "--json")
            delivered = json.loads(listed.stdout)
            by_scan = [r["scan_id"] for r in sorted(delivered, key=lambda r: r["scanned_at"])]
            by_delivery = [r["scan_id"] for r in sorted(delivered, key=lambda r: r["finished_at"])]
            assert by_delivery == by_scan and by_scan[0] == first["scan_id"], delivered
            assert [r["attempt"] for r in delivered] == [1, 1]
