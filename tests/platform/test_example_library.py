"""The proof: the example third-party app in docs/examples/library is packed with `yima_sdk.pack` (what
`yima-sdk pack` runs), published over the developer API, reviewed, released, consented to and called
through the gateway; its scan handler answers the front-desk terminal."""

from __future__ import annotations

import datetime as dt
import secrets
import shutil
import uuid
from pathlib import Path

from yima_sdk.pack import pack

from server.terminals.events import ScanEvent
from tests.conftest import login, valid_id_number
from tests.platform.conftest import Team, call, new_app_id

LIBRARY = Path(__file__).resolve().parents[2] / "docs" / "examples" / "library"


async def test_library_app_from_pack_to_gateway(team: Team, tmp_path: Path) -> None:
    # the example as shipped, under an id of this test's own (an app id belongs to the developer who took it first)
    folder = Path(shutil.copytree(LIBRARY, tmp_path / "library"))
    manifest = folder / "miniapp.toml"
    manifest.write_text(
        manifest.read_text().replace('id = "cn.example.library"', f'id = "{new_app_id("library")}"')
    )
    package = pack(folder)
    app_id = package.manifest.id
    assert app_id != "cn.example.library"
    r = await team.publish(package.data, app_id)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "in_review", r.json()
    review = await team.admin(
        "POST", f"/{app_id}/versions/1.0.0/review", json={"decision": "approve", "reason": "privacy ok"}
    )
    assert review.status_code == 200
    r = await team.admin("POST", f"/{app_id}/release", json={"version": "1.0.0", "percent": 100})
    assert r.status_code == 200, r.text

    reader = await login(team.client)
    id_number = valid_id_number(birth="19850607", seq=f"{secrets.randbelow(1000):03d}")
    r = await team.client.put(
        "/v1/me/identity", json={"name": "王小明", "id_number": id_number}, headers=reader.headers
    )
    assert r.status_code == 200, r.text
    r = await call(team.client, reader, app_id, "GET", "/me/name")
    assert r.status_code == 403 and r.json()["code"] == "consent.denied"
    r = await team.client.put(
        f"/v1/me/consents/{app_id}/real_name_masked", json={"granted": True}, headers=reader.headers
    )
    assert r.status_code == 200
    assert (await call(team.client, reader, app_id, "GET", "/me/name")).json() == {"name": "王**"}

    books = (await call(team.client, reader, app_id, "GET", "/books")).json()
    assert {b["id"]: b["available"] for b in books} == {"b1": 2, "b2": 1}
    r = await call(team.client, reader, app_id, "POST", "/books/b2/reserve")
    assert r.status_code == 201 and r.json()["pickup_pass"].startswith("YP1.")
    other = await login(team.client)
    r = await call(team.client, other, app_id, "POST", "/books/b2/reserve")
    assert r.status_code == 409 and r.json()["code"] == "library.no_copy_left"
    inbox = (await team.client.get("/v1/me/inbox", headers=reader.headers)).json()
    assert inbox[0]["title"] == "Book reserved"

    scene = f"library-desk-{uuid.uuid4().hex[:6]}"
    assert (await team.admin("PUT", f"/scenes/counter/{scene}", json={"app_id": app_id})).status_code == 200
    part = await team.scan_events.scan_recorded(
        ScanEvent(
            str(uuid.uuid4()),
            "desk-1",
            "counter",
            scene,
            "accept",
            None,
            "ankang_code",
            reader.account_id,
            dt.datetime.now(dt.UTC),
            "online",
        )
    )
    assert part.lines == ["Reserved: Bamboo of Anhui"] and not part.missing
