"""`yima dev` as a developer runs it (the CLI, uvicorn's default loop, the embedded PostgreSQL): `--app PATH`
runs a local folder as a released app and reloads it when a file changes; a scan at its scene reaches it; and an
app published with the SDK goes the whole way (review, release, gateway, scene, terminal) on the same server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.seed import DEMO_OPERATOR_PHONE
from tests.e2e._real import (
    RealServer,
    enrol_terminal,
    eventually,
    private_folder,
    real_server,
    scan_code,
    server_env,
    ship_and_use,
    sign_in,
    verified_resident,
)
from tests.platform.conftest import new_app_id, write_probe


@dataclass
class Dev:
    server: RealServer
    folder: Path
    app_id: str
    local: Path


PAGE = '<!doctype html><title>local</title><script src="/static/yima.js"></script><p>local page</p>\n'


@pytest.fixture(scope="module")
def dev() -> Iterator[Dev]:
    # The default a developer gets: the embedded PostgreSQL in the data folder and the in-process cache.
    with private_folder() as folder:
        app_id = new_app_id("local")
        local = write_probe(folder / "src", app_id)
        (local / "ui").mkdir()
        (local / "ui" / "index.html").write_text(PAGE)
        env = server_env("", folder / "data", redis=False)
        with real_server("dev", "--app", str(local), env=env) as server:
            yield Dev(server, folder, app_id, local)


def test_a_local_folder_runs_as_a_released_app_and_reloads_when_edited(dev: Dev) -> None:
    resident = verified_resident(dev.server)
    whoami = f"/v1/miniapps/{dev.app_id}/api/whoami"
    r = resident.get(whoami)  # live as soon as the server answers /health
    assert r.status_code == 200, r.text + dev.server.output()[-3000:]
    assert r.json()["version"] == "1.0.0" and r.json()["user_id"].startswith("u_")
    loaded = [x for x in dev.server.output().splitlines() if x.startswith(f"yima dev: {dev.app_id} ")]
    assert len(loaded) == 1 and " is live from " in loaded[0], loaded  # started once, by the serving process

    # the manifest subscribes to clinic scans: bound to the scene named after the app
    operator = sign_in(dev.server, DEMO_OPERATOR_PHONE)
    terminal = enrol_terminal(dev.server, operator, "clinic", dev.app_id)
    answer = scan_code(terminal, resident)
    assert answer["miniapp"]["lines"] == ["Queue number 7", "Room 203"], answer

    source = dev.local / "app.py"
    source.write_text(source.read_text().replace('"version": "1.0.0"', '"version": "edited"'))

    def edited() -> bool:
        r = resident.get(whoami)
        assert r.status_code == 200, r.text
        return bool(r.json()["version"] == "edited")

    eventually(edited, limit_s=30)
    # the resident is the same to the app across reloads (app-scoped id), and the server says what it loaded
    assert resident.get(whoami).json()["user_id"] == r.json()["user_id"]
    assert f"yima dev: {dev.app_id} 1.0.0+dev." in dev.server.output()

    # an edit that breaks the app is reported, and the version that ran before keeps serving
    source.write_text("raise RuntimeError('half-written edit')\n" + source.read_text())
    eventually(lambda: "does not start" in dev.server.output(), limit_s=30)
    assert "half-written edit" in dev.server.output()
    r = resident.get(whoami)
    assert r.status_code == 200 and r.json()["version"] == "edited", r.text


def test_an_app_published_with_the_sdk_goes_the_whole_way(dev: Dev) -> None:
    developer = sign_in(dev.server, role="developer")
    operator = sign_in(dev.server, DEMO_OPERATOR_PHONE)
    ship_and_use(dev.server, write_probe(dev.folder / "apps", new_app_id("published")), developer, operator)


def test_an_app_keeps_its_bookings_in_ctx_db(dev: Dev) -> None:
    """The probe's bookings: a slot counter and a booking in one `ctx.db` transaction, a query on a declared
    index, and a query on an undeclared field refused with its stable code, on the embedded PostgreSQL."""
    resident = verified_resident(dev.server)
    api = f"/v1/miniapps/{dev.app_id}/api"
    answers = [resident.post(f"{api}/db/book", params={"slots": 2, "n": i}) for i in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 409], [a.text for a in answers]
    assert resident.get(f"{api}/db/bookings/2026-03-02").json() == {"count": 2, "taken": 2}
    page = resident.post(
        f"{api}/raw/db/find", json={"collection": "bookings", "where": {"day": "2026-03-02"}}
    )
    assert page.status_code == 200, page.text
    assert sorted(item["value"]["n"] for item in page.json()["items"]) == ["0", "1"]
    refused = resident.post(f"{api}/raw/db/find", json={"collection": "bookings", "where": {"n": "0"}})
    assert (refused.status_code, refused.json()["code"]) == (400, "db.not_indexed"), refused.text


def test_a_staff_route_refuses_residents_and_admits_granted_staff(dev: Dev) -> None:
    """The local app's manifest makes `GET /patients/today` a doctors' route: refused for a resident before the
    app runs, allowed once the demo operator grants the account the role at a clinic, refused again on revoke."""
    operator = sign_in(dev.server, DEMO_OPERATOR_PHONE)
    doctor = verified_resident(dev.server)
    patients = f"/v1/miniapps/{dev.app_id}/api/patients/today"
    r = doctor.get(patients)
    assert (r.status_code, r.json()["code"]) == (403, "miniapp.staff_required"), r.text

    account_id = doctor.get("/v1/me").json()["id"]
    staff = f"/v1/miniapps/{dev.app_id}/staff"
    r = operator.post(
        staff, json={"account_id": account_id, "role": "doctor", "unit": "clinic:guangde-people-1"}
    )
    assert r.status_code == 201, r.text
    r = doctor.get(patients)
    assert r.status_code == 200, r.text
    assert r.json() == {"doctor": True, "clinics": ["clinic:guangde-people-1"]}

    r = operator.delete(f"{staff}/{account_id}/doctor", params={"unit": "clinic:guangde-people-1"})
    assert r.status_code == 204, r.text
    assert doctor.get(patients).status_code == 403


def test_the_local_folders_page_is_served_under_the_page_policy(dev: Dev) -> None:
    resident = verified_resident(dev.server)
    entry = next(e for e in resident.get("/v1/miniapps").json() if e["app_id"] == dev.app_id)
    page = resident.get(entry["page"])  # /miniapps/<id>/versions/<version>/ui/: the version the resident gets
    assert page.status_code == 200 and page.text == PAGE, page.text
    policy = page.headers["content-security-policy"]
    assert (
        f"connect-src {dev.server.url}/v1/miniapps/{dev.app_id}/api/;" in policy
        and "sandbox allow-scripts" in policy
    )
    assert resident.get(f"/miniapps/{dev.app_id}/ui/").text == PAGE
