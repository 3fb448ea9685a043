"""Offline gates of the tourism app through a real `yima dev` (its own): visitors reserve and pay, the gate of
太极洞 (`yima terminal scan --offline --gate gate`, the real terminal SDK on its own key file and SQLite file) syncs
the spot's terminal list once, then works with no server at all: the holder's Ankang code is admitted, a code
without a ticket is refused, a second entry is refused (太极洞 has no re-entry), a group ticket admits its three,
a ticket cancelled before the sync is refused; `yima terminal upload` settles each entry once."""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from yima_sdk.cron import COUNTY_TIME

from tests.conftest import free_port
from tests.credentials.helpers import public_key_b64
from tests.e2e._real import YIMA, enrol_terminal, eventually, private_folder, verified_resident
from tests.e2e.test_real_tourism import (
    API,
    APP,
    Dev,
    all_day_slot,
    live,
    pay,
    paying_resident,
    roots,
    running_dev,
    senior,
    staff,
)

SPOT = "taiji-cave"


@pytest.fixture(scope="module")
def dev() -> Iterator[Dev]:
    yield from running_dev()


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def gate_key_file(dev: Dev, folder: Path) -> Path:
    """A gate of 太极洞 registered by the operator, its key and the pinned root keys in a key file of its own."""
    key = Ed25519PrivateKey.generate()
    body = {"name": "太极洞 gate 1", "kind": "scenic", "scene": APP, "public_key": public_key_b64(key),
            "unit": f"spot:{SPOT}"}  # fmt: skip
    r = dev.operator.post("/v1/admin/terminals", json=body)
    assert r.status_code == 201, r.text
    path = folder / "gate.json"
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    content = {
        "terminal_id": r.json()["id"],
        "private_key": b64(raw),
        "root_public_keys": {kid: b64(k) for kid, k in roots(dev).items()},
    }
    path.write_text(json.dumps(content))
    return path


def gate(dev: Dev, key_file: Path, command: str, *argv: str, online: bool) -> dict[str, Any]:
    """`yima terminal scan|upload` as the gate; offline: its URL answers nothing (a cut line)."""
    url = dev.server.url if online else f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [YIMA, "terminal", command, "--data-dir", dev.server.env["YIMA_DATA_DIR"], "--url", url,
         "--key-file", str(key_file), *argv],
        env=dev.server.env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    if not online:
        assert "could not sync" in done.stderr, done.stderr
    return dict(json.loads(done.stdout))


def admit(dev: Dev, key_file: Path, payload: str, *, online: bool = False) -> dict[str, Any]:
    return gate(dev, key_file, "scan", "--offline", "--gate", "gate", payload, online=online)


def code(visitor: httpx.Client) -> str:
    r = visitor.get("/v1/me/codes/ankang")
    assert r.status_code == 200, r.text
    return str(r.json()["payload"])


def later_slot(dev: Dev) -> str:
    """A slot of 太极洞 today that has not started yet (a ticket of it may still be cancelled)."""
    now = dt.datetime.now(COUNTY_TIME)
    if now.hour == 23 and now.minute >= 50:
        pytest.skip("no slot of today starts later than now")
    start = (now + dt.timedelta(minutes=5)).strftime("%H:%M")
    keeper = staff(dev, "spot_staff", f"spot:{SPOT}")
    body = {"spot": SPOT, "day": dev.today, "start": start, "end": "23:59", "capacity": 5}
    r = keeper.post(f"{API}/staff/slots", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_an_offline_gate_admits_by_the_synced_list_and_uploads_settle_each_entry_once(dev: Dev) -> None:
    slot = all_day_slot(dev, SPOT, 20)
    solo, stranger, cancelling = senior(dev), verified_resident(dev.server), senior(dev)
    ticket = solo.post(f"{API}/slots/{slot}/reserve").json()
    assert (ticket["price_fen"], ticket["gates"]) == (0, True), ticket  # free: held at the gate at once
    group = paying_resident(dev, 3 * 8000)
    r = group.post(f"{API}/slots/{slot}/reserve", json={"people": 3})
    assert r.status_code == 201 and "gates" not in r.json(), r.text  # unpaid: not at the gate
    pay(group, r.json()["payment_id"])
    assert group.get(f"{API}/tickets").json()["tickets"][0]["gates"] is True  # paid: held now
    gone = cancelling.post(f"{API}/slots/{later_slot(dev)}/reserve").json()
    assert cancelling.delete(f"{API}/tickets/{gone['id']}").status_code == 200  # before the gate syncs
    bureau = staff(dev, "bureau", None)
    before = live(bureau, SPOT)["admitted"]

    with private_folder() as folder:
        key_file = gate_key_file(dev, folder)
        first = admit(dev, key_file, code(solo), online=True)  # the gate syncs, then decides by itself
        assert (first["admit"], first["people"], first["lines"]) == (
            True,
            1,
            ["请通行 Admitted", "1 人 people"],
        )
        closes = dt.datetime.combine(dt.date.fromisoformat(dev.today), dt.time(23, 59), COUNTY_TIME)
        assert first["entry"]["value"] == {
            "kind": "ticket", "from": dev.today, "until": dev.today, "people": 1, "reentry": False,
            "enter_until": int(closes.timestamp()),
        }  # fmt: skip
        assert first["entry"]["key"].startswith("ticket.") and "u_" not in first["entry"]["key"]

        # the line is cut: everything below is decided by the gate alone
        answer = admit(dev, key_file, ticket["pass"]["payload"])  # her second entry, by her pass
        assert (answer["result"], answer["admit"], answer["reason"]) == ("accept", False, None), answer
        assert answer["lines"] == ["已使用 Already used: no re-entry", "list.used_up"]
        answer = admit(dev, key_file, code(group))
        assert (answer["admit"], answer["people"]) == (True, 3), answer
        for visitor in (stranger, cancelling):  # no ticket; a ticket cancelled before the sync
            answer = admit(dev, key_file, code(visitor))
            assert (answer["result"], answer["admit"]) == ("accept", False), answer
            assert answer["lines"] == ["未持票 Nothing held for this code now", "list.no_entry"]
        assert answer["pending"] == 5

        # the line is back: the five scans go up; the two admissions settle, once, however often sent
        assert gate(dev, key_file, "upload", online=True) == {"uploaded": 5}
        assert gate(dev, key_file, "upload", online=True) == {"uploaded": 0}
        eventually(lambda: live(bureau, SPOT)["admitted"] == before + 4, limit_s=30)
        assert [t["entered"] for t in solo.get(f"{API}/tickets").json()["tickets"]] == [1]
        assert [
            t["entered"] for t in group.get(f"{API}/tickets").json()["tickets"] if t["id"] == r.json()["id"]
        ] == [1]
        assert live(bureau, SPOT)["admitted"] == before + 4


def test_the_sync_answer_names_no_one(dev: Dev) -> None:
    """What a gate receives: keys, values, tags and salts; never an app's user id or a resident's."""
    visitor = senior(dev)
    slot = all_day_slot(dev, "jishan-bamboo", 5)
    ticket = visitor.post(f"{API}/slots/{slot}/reserve").json()
    terminal = enrol_terminal(dev.server, dev.operator, "scenic", APP, unit="spot:jishan-bamboo")
    answer = terminal.get("/v1/terminal/lists")
    assert answer.status_code == 200, answer.text
    assert ticket["user_id"] not in answer.text
    entries = answer.json()["entries"]
    assert f"ticket.{slot}.{ticket['number']}" in {e["key"] for e in entries}
    fields = {
        "list",
        "key",
        "seq",
        "value",
        "valid_from",
        "expires_at",
        "pass_number",
        "first_bucket",
        "tags",
    }
    assert all(set(e) <= fields | {"dropped"} for e in entries)
