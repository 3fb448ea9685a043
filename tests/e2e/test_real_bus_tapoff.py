"""Staged fares by stops travelled (分段计价) through the real core: `yima dev` with the bus app, a K2 terminal (its
stages: up to 2 stops 2 yuan, up to 5 stops 4 yuan) naming its stop with each scan. The rider boards at the bus
station and taps off at Xinhang, two stops on: the boarding charges the top stage, 4 yuan, and the tap-off gives
2 yuan back, once.

- online, through `yima terminal scan --stop ... [--tap off]` (the real CLI over HTTP, the same Ankang code shown
  to board and to tap off): the refund waits until the rider confirms the fare in the shell, then comes back
  once, on the one-card statement; a malformed stop is refused (400 `scan.stop_invalid`, and by the CLI);
- offline, through a terminal on the terminal SDK: the boarding priced `Terminal.fare("k2", "bus-station")` and
  the tap-off (the same ride code) recorded, uploaded four times at once: settlement charges the top stage once
  and the tap-off's upload gives the same 2 yuan back as online, once; a ride not tapped off keeps its 4 yuan."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from server.seed import DEMO_OPERATOR_PHONE
from tests.credentials.helpers import public_key_b64
from tests.e2e._real import (
    RealServer,
    b64url,
    enrol_terminal,
    eventually,
    private_folder,
    real_server,
    server_env,
    sign_in,
)
from tests.e2e.test_real_bus import bus_terminal, ride_codes_holder, rider_with_card, top_up

APP = "gov.guangde.bus"
API = f"/v1/miniapps/{APP}/api"
COUNTY_TIME = dt.timezone(dt.timedelta(hours=8))
BACK = ["k2路 bus-station → xinhang", "按站计价 by stops -¥2.00 已退 refunded"]


@pytest.fixture(scope="module")
def dev() -> Iterator[tuple[RealServer, httpx.Client]]:
    with private_folder() as folder:
        env = server_env("", folder / "data", redis=False, YIMA_DEV_FIRST_PARTY="1")
        with real_server("dev", env=env) as server:
            operator = sign_in(server, DEMO_OPERATOR_PHONE)
            eventually(lambda: operator.get(f"{API}/lines").status_code == 200, limit_s=60)  # seeded
            yield server, operator


def balance(rider: httpx.Client) -> int:
    return int(rider.get("/v1/me/onecard").json()["balance_fen"])


def refunds(rider: httpx.Client) -> list[int]:
    month = dt.datetime.now(COUNTY_TIME).strftime("%Y-%m")
    entries = rider.get("/v1/me/onecard/statements", params={"month": month}).json()["entries"]
    return [e["amount_fen"] for e in entries if e["kind"] == "refund"]


def rides(rider: httpx.Client) -> list[dict[str, Any]]:
    time.sleep(0.4)  # the app's per-resident call quota: a few calls a second
    r = rider.get(f"{API}/rides")
    assert r.status_code == 200, r.text
    return list(r.json()["rides"])


def k2_key_file(operator: httpx.Client, folder: Path) -> Path:
    """A K2 terminal registered by the operator, and its key file as `yima terminal scan --key-file` reads it."""
    key = Ed25519PrivateKey.generate()
    body = {
        "name": "K2 bus 01",
        "kind": "bus",
        "scene": APP,
        "unit": "line:k2",
        "public_key": public_key_b64(key),
    }
    r = operator.post("/v1/admin/terminals", json=body)
    assert r.status_code == 201, r.text
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    path = folder / "k2-bus.json"
    path.write_text(json.dumps({"terminal_id": r.json()["id"], "private_key": b64url(raw)}))
    return path


def cli_scan(server: RealServer, key_file: Path, payload: str, *options: str) -> dict[str, Any]:
    done = server.yima(
        "terminal", "scan", "--url", server.url, "--key-file", str(key_file), *options, payload
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_online_the_tap_off_gives_back_the_stages_not_travelled_once(
    dev: tuple[RealServer, httpx.Client], tmp_path: Path
) -> None:
    server, operator = dev
    rider = rider_with_card(server, "19900301", tmp_path)  # born 1990: no concession
    assert rider.get(f"{API}/me").status_code == 200  # she uses the app
    top_up(rider, 1000)
    key_file = k2_key_file(operator, tmp_path)
    code = rider.get("/v1/me/codes/ankang").json()["payload"]

    boarded = cli_scan(server, key_file, code, "--stop", "bus-station")
    assert boarded["result"] == "accept" and boarded["miniapp"]["lines"] == ["k2路 ¥4.00"], boarded
    # The same code shown at the exit: a tap-off (not a replay of the boarding), charged nothing. Her fare
    # waits for her confirmation, so its 2 yuan wait too.
    off = cli_scan(server, key_file, code, "--stop", "xinhang", "--tap", "off")
    assert off["result"] == "accept", off
    assert off["miniapp"]["lines"] == [
        "k2路 bus-station → xinhang",
        "按站计价 -¥2.00 确认后退 after you confirm",
    ], off
    again = cli_scan(server, key_file, code, "--stop", "xinhang", "--tap", "off")
    assert again["reason"] == "scan.replayed" and "miniapp" not in again, again  # a tap-off spends once too
    (payment,) = [p for p in rider.get("/v1/me/payments").json() if p["app_id"] == APP]
    assert payment["amount_fen"] == 400, payment
    r = rider.post(f"/v1/me/payments/{str(payment['id']).removeprefix('pay_')}/confirm")
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    assert balance(rider) == 600
    (ride,) = rides(rider)  # reading her rides gives back what waited for the confirmation
    assert (ride["board"], ride["alight"], ride["fare_fen"]) == ("bus-station", "xinhang", 400), ride
    assert (ride["tapoff_off_fen"], ride["tapoff_status"]) == (200, "refunded"), ride
    assert rides(rider)[0]["tapoff_status"] == "refunded"  # read again: nothing more
    assert balance(rider) == 800
    assert refunds(rider) == [200]
    statement = rider.get(f"{API}/statement").json()
    assert (statement["paid_fen"], statement["tapoff_off_fen"], statement["tapped_off"]) == (200, 200, 1)

    # A stop that is no ASCII id: refused by the CLI before sending, and by the server with a stable code.
    refused = server.yima("terminal", "scan", "--url", server.url, "--key-file", str(key_file), "--stop", "人民广场", code)  # fmt: skip
    assert refused.returncode == 2 and "--stop" in refused.stderr, refused.stderr
    terminal = enrol_terminal(server, operator, "bus", APP, unit="line:k2")
    r = terminal.post(
        "/v1/scans", json={"payload": code, "scanned_at": int(time.time() * 1000), "stop": "a b"}
    )
    assert r.status_code == 400 and r.json()["code"] == "scan.stop_invalid", r.text


def test_offline_the_tap_off_upload_gives_back_what_online_does_once(
    dev: tuple[RealServer, httpx.Client], tmp_path: Path
) -> None:
    server, operator = dev
    rider = rider_with_card(server, "19900301", tmp_path)
    assert rider.get(f"{API}/me").status_code == 200
    top_up(rider, 1000)
    holder = ride_codes_holder(rider)
    terminal = bus_terminal(server, operator, rider, "k2", tmp_path / "k2.sqlite")  # uploads go 4x at once
    try:
        fare = terminal.fare("k2", "bus-station")
        assert fare == 400  # the top stage: where she gets off is not known yet
        code = holder.ride_code(terminal.now())
        assert terminal.scan(code, fare, stop="bus-station").result == "accept"
        off = terminal.scan(code, stop="xinhang", tap="off")  # the same ride code, at the exit
        assert (off.result, off.repeated) == ("accept", False), off
        # Later she rides again and does not tap off: the top stage stays.
        assert terminal.scan(holder.ride_code(terminal.now()), fare, stop="taozhou").result == "accept"
        assert terminal.upload_pending() == 3
    finally:
        terminal.close()

    def refunded() -> list[dict[str, Any]]:
        found = rides(rider)
        return found if len(found) == 2 and found[0]["tapoff_status"] == "refunded" else []

    first, second = eventually(refunded, limit_s=30)
    assert (first["board"], first["alight"], first["settled_fen"], first["tapoff_off_fen"]) == (
        "bus-station",
        "xinhang",
        400,
        200,
    ), first
    assert (second["board"], second["alight"], second["settled_fen"], second["tapoff_off_fen"]) == (
        "taozhou",
        None,
        400,
        0,
    ), second
    assert balance(rider) == 1000 - 400 - 400 + 200  # charged once each, 2 yuan back once
    assert refunds(rider) == [200]
    statement = rider.get(f"{API}/statement").json()
    assert (statement["paid_fen"], statement["tapoff_off_fen"]) == (600, 200), statement
