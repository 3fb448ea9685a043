"""Mini-app pages: the `ui/` bundle's limits at pack and at upload, its files served under the page policy, and
the app session a page calls its gateway with (valid for its own app only, ended with the resident's session)."""

from __future__ import annotations

import io
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import jwt
import pytest
from yima_sdk.errors import PackError
from yima_sdk.pack import pack
from yima_sdk.ui_bundle import UI_MAX_FILE_BYTES, UI_MAX_FILES, UI_MAX_TOTAL_BYTES

from tests.conftest import AppClient
from tests.platform.conftest import Team, login, new_app_id, write_probe

YIMA_SDK = str(Path(sys.executable).parent / "yima-sdk")
PAGE = b'<!doctype html><meta charset="utf-8"><title>Probe</title><script src="/static/yima.js"></script>'


def with_ui(folder: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        target = folder / "ui" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return folder


@pytest.mark.parametrize(
    ("files", "code"),
    [
        ({"index.html": PAGE, "tool.py": b"x = 1\n"}, "ui.file_type"),
        ({"index.html": PAGE, "run.exe": b"MZ"}, "ui.file_type"),
        ({"index.html": PAGE, "big.js": b"/" * (UI_MAX_FILE_BYTES + 1)}, "ui.file_size"),
        (
            {"index.html": PAGE, **{f"p{i}.png": b"x" * (UI_MAX_FILE_BYTES // 2) for i in range(9)}},
            "ui.total_size",
        ),
        ({"index.html": PAGE, **{f"s{i}.css": b"a{}" for i in range(UI_MAX_FILES)}}, "ui.file_count"),
        ({"about.html": PAGE}, "ui.no_index"),
    ],
)
def test_pack_refuses_a_bundle_past_its_limits(tmp_path: Path, files: dict[str, bytes], code: str) -> None:
    assert (UI_MAX_FILE_BYTES // 2) * 9 > UI_MAX_TOTAL_BYTES
    folder = with_ui(write_probe(tmp_path, new_app_id()), files)
    with pytest.raises(PackError) as refused:
        pack(folder)
    assert refused.value.code == code


def test_the_cli_names_the_rule_and_the_file(tmp_path: Path) -> None:
    folder = with_ui(write_probe(tmp_path, new_app_id()), {"index.html": PAGE, "lib/tool.py": b"x = 1\n"})
    run = subprocess.run(
        [YIMA_SDK, "pack", str(folder)], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode != 0
    assert "ui.file_type" in run.stderr and "ui/lib/tool.py" in run.stderr, run.stderr
    assert not (folder / "dist").exists()


def _zip(app_id: str, extra: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("miniapp.toml", f'id = "{app_id}"\nname = "U"\nversion = "1.0.0"\n')
        archive.writestr("app.py", "from yima_sdk import App\n\napp = App()\n")
        for name, content in extra.items():
            archive.writestr(name, content)
    return buf.getvalue()


async def test_an_upload_past_the_limits_fails_its_checks_by_code(team: Team) -> None:
    """A hand-made archive that skipped `yima-sdk pack`: the server checks the same rules itself."""
    app_id = new_app_id("ui")
    big = {"ui/index.html": PAGE, "ui/a.js": b"/" * (UI_MAX_FILE_BYTES + 1), "ui/b.wasm": b"\0asm"}
    r = await team.publish(_zip(app_id, big), app_id)
    assert r.status_code == 201, r.text
    answer = r.json()
    assert answer["status"] == "checks_failed" and answer["version"] == "1.0.0"
    failed = {c["name"]: c["detail"] for c in answer["checks"] if not c["ok"]}
    assert set(failed) == {"ui.file_type", "ui.file_size"}, failed
    assert "ui/b.wasm" in failed["ui.file_type"] and "ui/a.js" in failed["ui.file_size"]
    r = await team.client.get(f"/v1/developer/apps/{app_id}", headers=team.dev_headers)
    assert [v["status"] for v in r.json()["versions"]] == ["checks_failed"]  # never queued for review


async def test_pages_are_served_under_the_policy_and_app_sessions_hold_for_their_app_only(
    team: Team, tmp_path: Path
) -> None:
    client: AppClient = team.client
    script = b'yima.call("/whoami").then(function (me) { document.body.textContent = me.user_id; });'
    app_id = new_app_id()
    folder = with_ui(write_probe(tmp_path, app_id), {"index.html": PAGE, "js/app.js": script})
    app_id, version = await team.ship(folder)
    other_id, _ = await team.ship(write_probe(tmp_path, new_app_id()))

    page = await client.get(f"/miniapps/{app_id}/ui/")
    assert page.status_code == 200 and page.content == PAGE
    assert page.headers["content-type"].startswith("text/html")
    origin = str(client.base_url).rstrip("/")
    policy = page.headers["content-security-policy"]
    assert f"connect-src {origin}/v1/miniapps/{app_id}/api/;" in policy
    assert f"script-src {origin}/static/yima.js {origin}/miniapps/{app_id}/;" in policy
    assert "frame-ancestors 'self'" in policy and policy.endswith("sandbox allow-scripts")
    assert "unsafe" not in policy and "*" not in policy and "default-src 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "private, no-cache"  # the policy names this Host: no shared cache
    js = await client.get(f"/miniapps/{app_id}/versions/{version}/ui/js/app.js")
    assert js.status_code == 200 and js.content == script
    assert js.headers["content-type"].startswith("text/javascript")
    again = await client.get(
        f"/miniapps/{app_id}/ui/js/app.js", headers={"if-none-match": js.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""
    for missing, code in (
        (f"/miniapps/{app_id}/ui/app.py", "miniapp.ui_not_found"),
        (f"/miniapps/{app_id}/versions/0.0.1/ui/", "miniapp.unavailable"),
        (f"/miniapps/{other_id}/ui/", "miniapp.ui_not_found"),
        ("/miniapps/test.nobody.app/ui/", "miniapp.not_found"),
    ):
        r = await client.get(missing)
        assert r.status_code == 404 and r.json()["code"] == code, (missing, r.text)

    resident = await login(client)
    catalog = (await client.get("/v1/miniapps", headers=resident.headers)).json()
    pages = {e["app_id"]: e.get("page") for e in catalog if e["app_id"] in (app_id, other_id)}
    assert pages == {
        app_id: f"/miniapps/{app_id}/versions/{version}/ui/",
        other_id: None,
    }  # what the shell opens
    r = await client.post(f"/v1/me/miniapps/{app_id}/session", headers=resident.headers)
    assert r.status_code == 201, r.text
    session = r.json()
    token = session["token"]
    assert token.startswith("yas_") and session["app_id"] == app_id and 0 < session["expires_in"] <= 600
    as_page = {"authorization": f"Bearer {token}", "origin": "null"}
    r = await client.get(f"/v1/miniapps/{app_id}/api/whoami", headers=as_page)
    assert r.status_code == 200, r.text
    assert r.json()["user_id"] == session["user_id"]
    assert r.headers["access-control-allow-origin"] == "*"
    by_resident = await client.get(f"/v1/miniapps/{app_id}/api/whoami", headers=resident.headers)
    assert by_resident.json()["user_id"] == session["user_id"]  # the same resident, as the app knows them
    preflight = await client.options(
        f"/v1/miniapps/{app_id}/api/whoami",
        headers={
            "origin": "null",
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization",
        },
    )
    assert (
        preflight.status_code == 204 and "authorization" in preflight.headers["access-control-allow-headers"]
    )

    # the token: nothing about the resident in it, and good nowhere but its app's gateway
    claims = jwt.decode(token.removeprefix("yas_"), options={"verify_signature": False})
    assert set(claims) == {"iss", "aud", "sub", "iat", "exp", "jti", "ses"}  # the page can read these
    assert claims["sub"] == session["user_id"] and claims["aud"].endswith(f"/miniapps/{app_id}")
    assert str(resident.account_id) not in (claims["sub"], claims["jti"]) and resident.phone not in token
    r = await client.get(f"/v1/miniapps/{other_id}/api/whoami", headers=as_page)
    assert r.status_code == 401 and r.json()["code"] == "miniapp.session_invalid"
    assert r.headers["access-control-allow-origin"] == "*"  # the page can read why
    for method, path in (("GET", "/v1/me"), ("GET", "/v1/me/codes/ankang"), ("GET", "/v1/miniapps")):
        r = await client.request(method, path, headers=as_page)
        assert r.status_code == 401 and r.json()["code"] == "auth.app_session_elsewhere", (path, r.text)
        bare = {"authorization": f"Bearer {token.removeprefix('yas_')}"}
        r = await client.request(method, path, headers=bare)
        assert r.status_code == 401 and r.json()["code"] == "auth.token_invalid", (path, r.text)
    r = await client.post(f"/v1/me/miniapps/{app_id}/session", headers=as_page)
    assert r.status_code == 401  # an app session cannot mint another
    forged = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    r = await client.get(f"/v1/miniapps/{app_id}/api/whoami", headers={"authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.json()["code"] == "miniapp.session_invalid"
    sessions = client.app.state.platform.app_sessions
    sessions.clock = lambda: time.time() - sessions.ttl_s - 60  # a session issued 11 minutes ago
    try:
        r = await client.post(f"/v1/me/miniapps/{app_id}/session", headers=resident.headers)
    finally:
        sessions.clock = time.time
    stale = {"authorization": f"Bearer {r.json()['token']}"}
    r = await client.get(f"/v1/miniapps/{app_id}/api/whoami", headers=stale)
    assert (
        r.status_code == 401 and r.json()["code"] == "miniapp.session_expired"
    )  # yima.js asks for a new one

    # the resident signs out: the app sessions of that sign-in end with it
    r = await client.post("/v1/auth/logout", headers=resident.headers)
    assert r.status_code == 204, r.text
    r = await client.get(f"/v1/miniapps/{app_id}/api/whoami", headers=as_page)
    assert r.status_code == 401 and r.json()["code"] == "auth.session_ended", r.text

    # a phased release: the whitelisted resident's catalog names the new version's page, everyone else the old
    early, late = await login(client), await login(client)
    page_two = PAGE.replace(b"Probe", b"Probe two")
    await team.ship(
        with_ui(write_probe(tmp_path, app_id, "2.0.0"), {"index.html": page_two}),
        percent=0,
        whitelist=[early.account_id],
    )
    for who, expected in ((early, page_two), (late, PAGE)):
        entry = next(
            e for e in (await client.get("/v1/miniapps", headers=who.headers)).json() if e["app_id"] == app_id
        )
        assert (await client.get(entry["page"])).content == expected, entry
    assert (
        await client.get(f"/miniapps/{app_id}/ui/")
    ).content == PAGE  # the unversioned address: the stable one
