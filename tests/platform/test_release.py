"""Registry and release over the real API with real sandbox workers: upload checks, review, phased release
(whitelist, deterministic buckets, only-increasing percentage), revert, rollback, suspend, audit."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from yima_sdk.pack import pack

from server.platform.runtime.ids import bucket
from tests.conftest import login
from tests.platform.conftest import Team, call, make_team, new_app_id, write_probe


async def test_unreleased_app_is_not_found_and_the_review_queue_holds_it(team: Team, tmp_path: Path) -> None:
    app_id = new_app_id()
    package = pack(write_probe(tmp_path, app_id))
    assert "tests/test_probe.py" not in package.files
    r = await team.publish(package.data, app_id)
    assert r.status_code == 201 and r.json()["status"] == "in_review"
    assert all(c["ok"] for c in r.json()["checks"])
    again = await team.publish(package.data, app_id)  # same bytes: idempotent
    assert again.status_code == 200 and again.json()["digest"] == r.json()["digest"]
    resident = await login(team.client)
    r = await call(team.client, resident, app_id, "GET", "/whoami")
    assert r.status_code == 404 and r.json()["code"] == "miniapp.not_found"
    queue = (await team.admin("GET", "/reviews")).json()
    assert any(item["app_id"] == app_id and item["version"] == "1.0.0" for item in queue)
    # a release before approval is refused
    r = await team.admin("POST", f"/{app_id}/release", json={"version": "1.0.0"})
    assert r.status_code == 409 and r.json()["code"] == "release.not_approved"
    r = await team.admin(
        "POST", f"/{app_id}/versions/1.0.0/review", json={"decision": "reject", "reason": "no privacy notice"}
    )
    assert r.json()["status"] == "rejected"
    state = (await team.client.get(f"/v1/developer/apps/{app_id}", headers=team.dev_headers)).json()
    assert state["versions"][0]["review_reason"] == "no privacy notice"


async def test_upload_rules_owner_version_conflict_and_failed_checks(team: Team, tmp_path: Path) -> None:
    app_id = new_app_id()
    folder = write_probe(tmp_path, app_id)
    first = pack(folder)
    assert (await team.publish(first.data, app_id)).status_code == 201
    (folder / "app.py").write_text((folder / "app.py").read_text() + "\n# changed\n")
    r = await team.publish(pack(folder).data, app_id)
    assert r.status_code == 409 and r.json()["code"] == "registry.version_exists"
    other = await make_team(team.client)
    r = await other.publish(first.data, app_id, register=False)  # another developer, in another organisation
    assert r.status_code == 403 and r.json()["code"] == "registry.not_owner"
    # path traversal and a broken module are reported as failed checks, not stored for review
    evil_id = new_app_id()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("miniapp.toml", f'id = "{evil_id}"\nname = "Evil"\nversion = "1.0.0"\n')
        z.writestr("../escape.py", "x = 1\n")
    r = await team.publish(buf.getvalue(), evil_id)
    assert r.status_code == 201 and r.json()["status"] == "checks_failed"
    failed = {c["name"]: c for c in r.json()["checks"] if not c["ok"]}
    assert "path traversal" in failed["paths"]["detail"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("miniapp.toml", f'id = "{evil_id}"\nname = "Evil"\nversion = "1.0.1"\n')
        z.writestr("app.py", "def broken(:\n")
    r = await team.publish(buf.getvalue(), evil_id)
    assert r.json()["status"] == "checks_failed"
    assert not next(c for c in r.json()["checks"] if c["name"] == "python_syntax")["ok"]
    r = await team.client.post(
        f"/v1/developer/apps/{app_id}/versions",
        content=first.data,
        headers={"authorization": "Bearer ydt_nope"},
    )
    assert r.status_code == 401 and r.json()["code"] == "registry.token_invalid"


async def test_an_upload_asking_about_more_than_eight_counties_fails_its_manifest_check(team: Team) -> None:
    """What `yima-sdk pack` refuses, sent by hand: the server's upload check refuses it too, named."""
    app_id = new_app_id()
    counties = ("341822", "341821", "320481", "320282", "330522", "330523", "341881", "341802", "320412")
    scopes = "".join(f'"registered_in:{code}" = "Residents of this county pay half"\n' for code in counties)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("miniapp.toml", f'id = "{app_id}"\nname = "Asks"\nversion = "1.0.0"\n[scopes]\n{scopes}')
        z.writestr("app.py", "app = None\n")
    r = await team.publish(buf.getvalue(), app_id)
    assert r.status_code == 201 and r.json()["status"] == "checks_failed", r.text
    failed = {c["name"]: c["detail"] for c in r.json()["checks"] if not c["ok"]}
    assert "field `scopes`: 9 registered_in: scopes; at most 8" in failed["manifest"], failed
    queue = (await team.admin("GET", "/reviews")).json()
    assert all(item["app_id"] != app_id for item in queue)  # never queued for review


async def test_an_apps_versions_together_ask_about_at_most_eight_counties(team: Team, tmp_path: Path) -> None:
    """The cap is the app's: a version asking about 8 other counties than the stable one's would, released to a
    phased group beside it, put 16 yes-or-no questions about where a resident is registered to one app. Any
    approved version may be released, so the upload counts the counties of every version in review, approved or
    live, and fails its manifest check beyond 8."""
    app_id = new_app_id()
    counties = [f"3418{n:02d}" for n in range(1, 17)]

    def asking(version: str, codes: list[str]) -> bytes:
        folder = write_probe(tmp_path, app_id, version)
        toml = folder / "miniapp.toml"
        lines = "".join(f'"registered_in:{code}" = "Residents of this county pay half"\n' for code in codes)
        toml.write_text(toml.read_text().replace("[scopes]\n", "[scopes]\n" + lines, 1))
        return pack(folder).data

    r = await team.publish(asking("1.0.0", counties[:8]), app_id)
    assert r.json()["status"] == "in_review", r.text
    await team.admin("POST", f"/{app_id}/versions/1.0.0/review", json={"decision": "approve", "reason": "ok"})
    r = await team.admin("POST", f"/{app_id}/release", json={"version": "1.0.0", "percent": 100})
    assert r.status_code == 200, r.text

    r = await team.publish(asking("1.1.0", counties[8:]), app_id)  # 8 others: 16 with the stable version's
    assert r.status_code == 201 and r.json()["status"] == "checks_failed", r.text
    failed = {c["name"]: c["detail"] for c in r.json()["checks"] if not c["ok"]}
    assert list(failed) == ["manifest"], failed
    assert "its other versions (1.0.0) ask about" in failed["manifest"], failed
    assert "would ask about 16 registered_in: counties; at most 8 per app" in failed["manifest"], failed
    r = await team.publish(asking("1.2.0", counties[:7] + counties[8:9]), app_id)  # one county more: 9
    assert r.json()["status"] == "checks_failed", r.text
    queue = (await team.admin("GET", "/reviews")).json()
    assert all(item["app_id"] != app_id for item in queue)  # neither was queued for review

    r = await team.publish(asking("1.3.0", counties[2:8]), app_id)  # fewer of the same: still 8 for the app
    assert r.json()["status"] == "in_review", r.text


async def test_phased_release_whitelist_buckets_only_increase_revert_and_rollback(
    team: Team, tmp_path: Path
) -> None:
    app_id = new_app_id()
    await team.ship(write_probe(tmp_path, app_id, "1.0.0"))
    residents = [await login(team.client) for _ in range(12)]
    early = residents[0]
    for who in residents:
        assert (await call(team.client, who, app_id, "GET", "/whoami")).json()["version"] == "1.0.0"

    # 1.1.0 to the whitelist only
    folder = write_probe(tmp_path, app_id, "1.1.0")
    r = await team.publish(pack(folder).data, app_id)
    assert r.status_code == 201
    queued = next(i for i in (await team.admin("GET", "/reviews")).json() if i["app_id"] == app_id)
    # the reviewer compares with what residents run now
    assert queued["version"] == "1.1.0" and queued["previous_version"] == "1.0.0"
    assert queued["previous_manifest"]["version"] == "1.0.0" and queued["manifest"]["version"] == "1.1.0"
    listed = next(a for a in (await team.admin("GET", "")).json() if a["app_id"] == app_id)
    assert listed["stable_version"] == "1.0.0" and listed["status"] == "active"
    await team.admin("POST", f"/{app_id}/versions/1.1.0/review", json={"decision": "approve", "reason": "ok"})
    r = await team.admin(
        "POST", f"/{app_id}/release", json={"version": "1.1.0", "whitelist": [early.account_id]}
    )
    assert r.status_code == 200 and r.json()["phased_version"] == "1.1.0"

    async def versions() -> dict[int, str]:
        return {
            w.account_id: (await call(team.client, w, app_id, "GET", "/whoami")).json()["version"]
            for w in residents
        }

    seen = await versions()
    assert seen[early.account_id] == "1.1.0"
    assert all(v == "1.0.0" for acc, v in seen.items() if acc != early.account_id)

    # 50 %: exactly the residents whose bucket is below 50 (and the whitelist)
    r = await team.admin("POST", f"/{app_id}/release/phase", json={"percent": 50})
    assert r.status_code == 200
    seen = await versions()
    for acc, v in seen.items():
        expected = "1.1.0" if acc == early.account_id or bucket(app_id, acc) < 50 else "1.0.0"
        assert v == expected, (acc, bucket(app_id, acc))
    r = await team.admin("POST", f"/{app_id}/release/phase", json={"percent": 20})
    assert r.status_code == 409 and r.json()["code"] == "release.percentage_decrease"

    # revert: everyone back to 1.0.0 at once
    r = await team.admin("POST", f"/{app_id}/release/revert")
    assert r.status_code == 200 and r.json().get("phased_version") is None
    assert set((await versions()).values()) == {"1.0.0"}

    # release 1.1.0 to everyone, then roll back to 1.0.0
    r = await team.admin("POST", f"/{app_id}/release", json={"version": "1.1.0", "percent": 100})
    assert r.json()["stable_version"] == "1.1.0"
    assert set((await versions()).values()) == {"1.1.0"}
    r = await team.admin("POST", f"/{app_id}/rollback", json={"version": "1.0.0"})
    assert r.status_code == 200 and r.json()["stable_version"] == "1.0.0"
    assert set((await versions()).values()) == {"1.0.0"}
    r = await team.admin("POST", f"/{app_id}/rollback", json={"version": "0.9.0"})
    assert r.status_code == 409 and r.json()["code"] == "release.not_recent"

    async with team.client.app.state.core.db.connection() as conn:
        actions = [
            r["action"]
            for r in await conn.fetch(
                "SELECT action FROM audit_log WHERE target = $1 ORDER BY seq", f"miniapp:{app_id}"
            )
        ]
    assert actions == [
        "miniapp.release_started",
        "miniapp.release_completed",
        "miniapp.release_started",
        "miniapp.release_widened",
        "miniapp.release_reverted",
        "miniapp.release_started",
        "miniapp.release_completed",
        "miniapp.rolled_back",
    ]


async def test_new_app_phased_group_only_others_see_it_unavailable(team: Team, tmp_path: Path) -> None:
    app_id = new_app_id()
    insider, outsider = await login(team.client), await login(team.client)
    await team.ship(write_probe(tmp_path, app_id), percent=0, whitelist=[insider.account_id])
    assert (await call(team.client, insider, app_id, "GET", "/whoami")).status_code == 200
    r = await call(team.client, outsider, app_id, "GET", "/whoami")
    assert r.status_code == 404 and r.json()["code"] == "miniapp.unavailable"
    catalog = (await team.client.get("/v1/miniapps", headers=insider.headers)).json()
    entry = next(e for e in catalog if e["app_id"] == app_id)
    assert entry["scopes"] == [
        {"name": "birth_date", "purpose": "Seniors ride free: we check your age", "state": "not_asked"}
    ]
    assert all(
        e["app_id"] != app_id
        for e in (await team.client.get("/v1/miniapps", headers=outsider.headers)).json()
    )


async def test_suspend_refuses_every_call_at_once_and_stops_workers(team: Team, tmp_path: Path) -> None:
    app_id, version = await team.ship(write_probe(tmp_path, new_app_id()))
    resident = await login(team.client)
    assert (await call(team.client, resident, app_id, "GET", "/whoami")).status_code == 200
    host = team.client.app.state.platform.runtime.host
    assert host.worker_pids(f"{app_id}@{version}")
    r = await team.admin("POST", f"/{app_id}/suspend", json={"reason": "leaks data"})
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    r = await call(team.client, resident, app_id, "GET", "/whoami")
    assert r.status_code == 403 and r.json()["code"] == "miniapp.suspended"
    assert f"{app_id}@{version}" not in host.metrics()
    assert (await team.admin("POST", f"/{app_id}/resume")).status_code == 200
    assert (await call(team.client, resident, app_id, "GET", "/whoami")).status_code == 200
