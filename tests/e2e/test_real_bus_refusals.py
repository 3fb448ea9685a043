"""The bus app refuses what it cannot charge, through the real core (`yima dev` with the first-party apps, on a
database of its own) and real bus terminals on the terminal SDK scanning online: a terminal bound to no line, a
rider who never opened 一码乘车, a line the fare table does not price. The terminal hears `admit: false` (keeps
the rider off) and the rider's one-card is not charged. Malformed JSON bodies are refused with the app's stable
codes, never a server error."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from yima_sdk.terminal import HttpTransport, Terminal, TerminalCredentials

from server.seed import DEMO_OPERATOR_PHONE
from tests.credentials.helpers import public_key_b64
from tests.e2e._real import (
    RealServer,
    eventually,
    fresh_database,
    private_folder,
    real_server,
    server_env,
    sign_in,
    verified_resident,
)

APP = "gov.guangde.bus"
API = f"/v1/miniapps/{APP}/api"


class Dev:
    def __init__(self, server: RealServer, operator: httpx.Client) -> None:
        self.server, self.operator = server, operator

    def staff(self, role: str, unit: str | None = None) -> httpx.Client:
        """A resident the operator grants `role` (for `unit`) of the bus app."""
        clerk = verified_resident(self.server)
        body = {"account_id": clerk.get("/v1/me").json()["id"], "role": role, "unit": unit}
        r = self.operator.post(f"/v1/miniapps/{APP}/staff", json=body)
        assert r.status_code == 201, r.text
        return clerk

    def terminal(self, unit: str | None, folder: Path) -> Terminal:
        """A bus terminal on the terminal SDK (serving `unit`), signed in and synced."""
        key = Ed25519PrivateKey.generate()
        body = {"name": "bus", "kind": "bus", "scene": APP, "public_key": public_key_b64(key)}
        if unit is not None:
            body["unit"] = unit
        r = self.operator.post("/v1/admin/terminals", json=body)
        assert r.status_code == 201, r.text
        registered = r.json()
        info = self.operator.get("/v1/trust-list/info").json()
        roots = {kid: base64.urlsafe_b64decode(k + "==") for kid, k in info["root_public_keys"].items()}
        transport = HttpTransport(
            self.server.url, TerminalCredentials(registered["id"], key),
            token_endpoint=registered["token_endpoint"],
        )  # fmt: skip
        terminal = Terminal(
            root_public_keys=roots, db_path=str(folder / f"{registered['id']}.sqlite"), clock=time.time,
            clock_source="ntp", transport=transport, app_id=APP,
        )  # fmt: skip
        terminal.refresh()
        return terminal


@pytest.fixture(scope="module")
def dev() -> Iterator[Dev]:
    with private_folder() as folder, fresh_database() as dsn:
        env = server_env(dsn, folder / "data", redis=False, YIMA_DEV_FIRST_PARTY="1")
        with real_server("dev", env=env) as server:
            operator = sign_in(server, DEMO_OPERATOR_PHONE)
            watcher = verified_resident(server)
            eventually(lambda: watcher.get(f"{API}/lines").status_code == 200, limit_s=60)  # seeded
            yield Dev(server, operator)


def scan_online(terminal: Terminal, rider: httpx.Client) -> dict[str, Any]:
    """The rider shows a fresh Ankang code; the terminal scans it online (what `yima terminal scan` does)."""
    r = rider.get("/v1/me/codes/ankang")
    assert r.status_code == 200, r.text
    assert isinstance(terminal._transport, HttpTransport)
    return dict(json.loads(terminal._transport.scan_online(r.json()["payload"], int(time.time() * 1000))))


def app_payments(rider: httpx.Client) -> list[int]:
    return [p["amount_fen"] for p in rider.get("/v1/me/payments").json() if p["app_id"] == APP]


def test_a_boarding_the_app_cannot_charge_keeps_the_rider_off(dev: Dev, tmp_path: Path) -> None:
    # a code is scanned once (the replay guard): each scan is another rider's
    riders = [verified_resident(dev.server) for _ in range(4)]
    newcomer = riders[1]  # never opened the app; the others use it
    assert all(rider.get(f"{API}/me").status_code == 200 for rider in riders if rider is not newcomer)
    line_1, unbound, line_99 = (dev.terminal(unit, tmp_path) for unit in ("line:1", None, "line:99"))
    try:
        refused = [
            scan_online(unbound, riders[0]),
            scan_online(line_1, newcomer),
            scan_online(line_99, riders[2]),
        ]
        assert [(a["result"], a["miniapp"]["lines"][0], a["miniapp"]["admit"]) for a in refused] == [
            ("accept", "终端未绑定线路 This terminal serves no line", False),
            ("accept", "请先开通一码乘车 Open 一码乘车 once to ride", False),
            ("accept", "票价未配置 No fare for this line", False),
        ], json.dumps(refused, ensure_ascii=False)
        assert [app_payments(rider) for rider in riders[:3]] == [[], [], []]
        assert [rider.get(f"{API}/rides").json()["rides"] for rider in (riders[0], riders[2])] == [[], []]
        ridden = scan_online(line_1, riders[3])["miniapp"]
        assert (ridden["lines"], ridden.get("admit")) == (["1路 ¥2.00"], None)  # charged: the rider gets on
        assert app_payments(riders[3]) == [200]
    finally:
        for terminal in (line_1, unbound, line_99):
            terminal.close()


def test_a_fare_table_or_grant_that_is_not_json_is_refused_with_the_apps_code(dev: Dev) -> None:
    clerk = dev.staff("fares")
    headers = {"content-type": "application/json"}
    for body in (b"version=2", b'{"version": 2', b""):
        r = clerk.put(f"{API}/fares/tables/2", content=body, headers=headers)
        assert r.status_code == 400 and r.json()["code"] == "bus.bad_fare_table", r.text
    granter = dev.staff("concessions")
    r = granter.post(f"{API}/concessions/grants", content=b"user_id=1", headers=headers)
    assert r.status_code == 400 and r.json()["code"] == "request.invalid", r.text


def test_the_newest_of_more_than_a_hundred_versions_prices_a_boarding(dev: Dev, tmp_path: Path) -> None:
    """The app reads every version (the platform keeps 200), not the first page of its storage."""
    clerk = dev.staff("fares")
    table = clerk.get(f"{API}/fares/tables").json()["tables"][0]
    start = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=45)
    for version in range(2, 103):  # line 1 at 1 yuan and `version` fen, all in force within seconds
        body = table | {
            "version": version,
            "effective_from": (start + dt.timedelta(microseconds=version)).isoformat(),
        }
        body["lines"] = table["lines"] | {"1": table["lines"]["1"] | {"flat_fen": 100 + version}}
        r = clerk.put(f"{API}/fares/tables/{version}", json=body)
        assert r.status_code == 201, r.text
    listed = clerk.get(f"{API}/fares/tables").json()["tables"]
    assert sorted(t["version"] for t in listed) == list(range(1, 103))
    eventually(lambda: dt.datetime.now(dt.UTC) > start + dt.timedelta(seconds=1), limit_s=60)
    rider = verified_resident(dev.server)
    assert rider.get(f"{API}/lines").json()["version"] == 102
    terminal = dev.terminal("line:1", tmp_path)
    try:
        assert terminal.fare("1") == 202  # the terminal synced them all too
        assert scan_online(terminal, rider)["miniapp"]["lines"] == ["1路 ¥2.02"]
    finally:
        terminal.close()
    assert app_payments(rider) == [202]
