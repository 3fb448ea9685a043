"""A developer's real flow through the `yima-sdk` command, each step in a subprocess as they would run it:
new -> the scaffold's own tests pass -> dev serves routes over real HTTP with switches -> check -> pack
(reproducible) -> publish to a stand-in developer API that checks the token and records the upload."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent / "yima-sdk"
TOKEN = "ydt_test-token"


def yima_sdk(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(autouse=True)
def own_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config folder of the test's own: a token saved by a real `yima-sdk login` must not leak in."""
    folder = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    return folder


@pytest.fixture(scope="module")
def scaffold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dev")
    done = yima_sdk("new", "clinic-visits", "--id", "cn.example.visits", cwd=root)
    assert done.returncode == 0, done.stderr
    return root / "clinic-visits"


def test_new_scaffolds_an_app_whose_own_tests_pass(scaffold: Path) -> None:
    assert sorted(p.relative_to(scaffold).as_posix() for p in scaffold.rglob("*") if p.is_file()) == [
        "app.py",
        "miniapp.toml",
        "tests/test_app.py",
        "ui/app.js",
        "ui/index.html",
        "ui/style.css",
    ]
    # the developer runs plain pytest in the app folder: the miniapp fixture comes from yima-sdk's plugin
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"],
        cwd=scaffold,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "11 passed" in run.stdout


def test_new_refuses_a_non_empty_folder_and_a_bad_id(scaffold: Path, tmp_path: Path) -> None:
    assert yima_sdk("new", str(scaffold), cwd=tmp_path).returncode == 1
    bad = yima_sdk("new", "x", "--id", "NotReverseDns", cwd=tmp_path)
    assert bad.returncode == 1 and "reverse-DNS" in bad.stderr


@pytest.fixture
def dev_server(scaffold: Path) -> Iterator[str]:
    proc = subprocess.Popen(
        [str(BIN), "dev", "--port", "0", "--payment-failure", "--payment-confirmation", "auto"],
        cwd=scaffold,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = []
        assert proc.stdout is not None
        for line in proc.stdout:
            banner.append(line)
            if line.startswith("serving on"):
                break
        text = "".join(banner)
        # one line on the OS layers: on Linux as root the simulator applies all of production's
        all_layers = sys.platform == "linux" and os.geteuid() == 0
        assert ("OS layers: every one" in text) == all_layers and "OS layers" in text, text
        found = re.search(r"http://127\.0\.0\.1:\d+", text)
        assert found, text
        yield found.group(0)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def http(url: str, method: str = "GET", body: Any = None, user: str | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if user:
        request.add_header("x-yima-user", user)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_dev_serves_routes_on_localhost_with_switches(dev_server: str) -> None:
    state = http(f"{dev_server}/_sim/state")[1]
    user_id = state["users"]["alice"]
    assert http(f"{dev_server}/hello") == (200, {"hello": user_id})
    assert http(f"{dev_server}/v1/miniapps/cn.example.visits/api/hello", user="grandpa")[1] == {
        "hello": state["users"]["grandpa"]
    }
    # started with --payment-failure and auto-confirmation: the app gives the slot back and answers 402
    assert http(f"{dev_server}/bookings/2026-03-02", "POST")[0] == 402
    assert http(f"{dev_server}/_sim/state")[1]["counters"] == {"slots:2026-03-02": 0}
    http(f"{dev_server}/_sim/switches", "POST", {"payment_failure": False})
    today = datetime.now(timezone(timedelta(hours=8))).date().isoformat()
    status, booked = http(f"{dev_server}/bookings/{today}", "POST", user="grandpa")
    assert (status, booked["fee_fen"]) == (201, 0)  # a senior, by consented birth date
    # consent denied: the app's ConsentDenied branch books grandpa at the full fee
    http(f"{dev_server}/_sim/switches", "POST", {"consent_denied": True})
    assert http(f"{dev_server}/bookings/2026-03-03", "POST", user="grandpa")[1]["fee_fen"] == 500
    http(f"{dev_server}/_sim/switches", "POST", {"quota_exceeded": True})
    assert http(f"{dev_server}/bookings/2026-03-04", "POST")[0] == 503
    scanned = http(
        f"{dev_server}/_sim/scan",
        "POST",
        {"scene_kind": "clinic", "user": "grandpa"},
    )
    assert scanned == (200, {"lines": ["Queue number 1"]})
    # the scaffold's doctors-only route: refused until the simulated operator grants carol the role
    assert http(f"{dev_server}/clinic/{today}", user="carol")[0] == 403
    grant = {"user": "carol", "role": "doctor", "unit": "clinic:guangde-people-1"}
    assert http(f"{dev_server}/_sim/staff", "POST", grant)[0] == 200
    assert http(f"{dev_server}/clinic/{today}", user="carol") == (
        200,
        {"booked": 1, "clinics": ["clinic:guangde-people-1"]},
    )
    assert http(f"{dev_server}/_sim/staff", "POST", {"user": "carol", "role": "surgeon"})[0] == 400
    state = http(f"{dev_server}/_sim/state")[1]
    assert state["staff"] == {"carol": [{"role": "doctor", "unit": "clinic:guangde-people-1"}]}
    assert [m["title"] for m in state["inbox"]] == ["Visit booked", "Visit booked"]
    # the clock moves a day: the scaffold's 18:00 reminder schedule fires once
    status, advanced = http(f"{dev_server}/_sim/advance", "POST", {"days": 1})
    assert status == 200 and advanced["now"] >= state["now"] + 86400
    assert [(run["name"], run["ok"]) for run in advanced["runs"]] == [("remind", True)]
    # every problem+json answer carries its status in the body, as the server's do: the simulator's own
    # endpoints, the simulated shell's resident API and the gateway's refusal of a staff route
    bad_advance = http(f"{dev_server}/_sim/advance", "POST", {"weeks": 1})
    assert problem_of(bad_advance) == (400, 400, "sim.bad_advance", True)
    assert problem_of(http(f"{dev_server}/v1/miniapps")) == (401, 401, "auth.required", True)
    staff_only = http(f"{dev_server}/clinic/{today}", user="grandpa")
    assert problem_of(staff_only) == (403, 403, "miniapp.staff_required", True)
    assert ("seccomp" in state["missing_layers"]) == (sys.platform != "linux")


def problem_of(answer: tuple[int, Any]) -> tuple[int, int, str, bool]:
    """An error answer's HTTP status, its body's status and code, and whether the body has a title."""
    status, body = answer
    return status, body.get("status"), body.get("code"), isinstance(body.get("title"), str)


def test_check_reports_scene_and_schedule_without_handler(scaffold: Path, tmp_path: Path) -> None:
    passed = yima_sdk("check", cwd=scaffold)
    assert passed.returncode == 0 and "ok   ui: 1 page(s), no inline script or style" in passed.stdout
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "app.py").write_text((scaffold / "app.py").read_text())
    (copy / "miniapp.toml").write_text(
        (scaffold / "miniapp.toml")
        .read_text()
        .replace('["clinic"]', '["clinic", "bus"]')
        .replace("[jobs]", '[jobs]\nclose_day = "0 20 * * *"')
    )
    (copy / "ui").mkdir()
    page = '<!doctype html>\n<script src="/static/yima.js"></script>\n<button onclick="go()">go</button>\n'
    (copy / "ui" / "index.html").write_text(page + "<script>go()</script>\n")
    failed = yima_sdk("check", cwd=copy)
    assert failed.returncode == 1 and "'bus' is subscribed" in failed.stdout
    # what the page policy would refuse, named with its line
    assert "FAIL ui/index.html line 3: event handler attribute onclick=" in failed.stdout, failed.stdout
    assert "FAIL ui/index.html line 4: inline <script>" in failed.stdout
    assert "'close_day' is scheduled in miniapp.toml but has no @app.job('close_day')" in failed.stdout


def test_check_and_pack_refuse_more_than_eight_counties(scaffold: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(scaffold, copy, ignore=shutil.ignore_patterns("dist", "__pycache__"))
    counties = ("341822", "341821", "320481", "320282", "330522", "330523", "341881", "341802", "320412")
    scopes = "".join(f'"registered_in:{code}" = "Residents of this county pay half"\n' for code in counties)
    text = (copy / "miniapp.toml").read_text()
    assert "[scopes]\n" in text
    (copy / "miniapp.toml").write_text(text.replace("[scopes]\n", "[scopes]\n" + scopes, 1))
    for command in ("check", "pack"):
        refused = yima_sdk(command, cwd=copy)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "field `scopes`: 9 registered_in: scopes; at most 8" in refused.stderr, refused.stderr
    assert not (copy / "dist").exists()


def test_pack_twice_gives_identical_bytes_and_prints_the_digest(scaffold: Path, tmp_path: Path) -> None:
    first = yima_sdk("pack", "-o", str(tmp_path / "a.zip"), cwd=scaffold)
    second = yima_sdk("pack", "-o", str(tmp_path / "b.zip"), cwd=scaffold)
    data = (tmp_path / "a.zip").read_bytes()
    assert data == (tmp_path / "b.zip").read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert f"digest {digest}" in first.stdout and f"digest {digest}" in second.stdout


class StandInApi:
    """Enough of POST /v1/developer/apps/{id}/versions to check what `publish` sends."""

    def __init__(self) -> None:
        self.uploads: list[dict[str, Any]] = []
        self.fail_checks = False
        self.polls = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.path.startswith("/v1/developer/device"):
                    return self.device_login()
                if self.headers["authorization"] != f"Bearer {TOKEN}":
                    return self.answer(
                        401, {"code": "auth.invalid_token", "detail": "unknown developer token"}
                    )
                found = re.fullmatch(r"/v1/developer/apps/([\w.-]+)/versions", self.path)
                if not found or self.headers["content-type"] != "application/zip":
                    return self.answer(400, {"code": "http.bad_request", "detail": self.path})
                digest = "sha256:" + hashlib.sha256(body).hexdigest()
                api.uploads.append({"app_id": found.group(1), "digest": digest, "size": len(body)})
                ok = not api.fail_checks
                self.answer(
                    201,
                    {
                        "app_id": found.group(1),
                        "version": "0.1.0",
                        "digest": digest,
                        "status": "in_review" if ok else "checks_failed",
                        "checks": [
                            {"name": "archive", "ok": True, "detail": ""},
                            {"name": "manifest", "ok": ok, "detail": "" if ok else "scope purpose too vague"},
                        ],
                    },
                )

            def device_login(self) -> None:
                """A sign-in that nobody confirms: started, then pending at every poll."""
                if self.path == "/v1/developer/device":
                    return self.answer(
                        201,
                        {
                            "device_code": "secret",
                            "user_code": "BCDF-GHJK",
                            "verification_uri": f"{api.url}/v1/developer/device/confirm",
                            "expires_in": 600,
                            "interval": 1,
                        },
                    )
                api.polls += 1
                self.answer(400, {"code": "device.authorization_pending", "detail": "not confirmed yet"})

            def answer(self, status: int, value: Any) -> None:
                data = json.dumps(value).encode()
                self.send_response(status)
                kind = "application/json" if status < 400 else "application/problem+json"
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api() -> Iterator[StandInApi]:
    stand_in = StandInApi()
    yield stand_in
    stand_in.close()


def test_publish_uploads_with_the_token_and_prints_the_checks(
    scaffold: Path, api: StandInApi, tmp_path: Path
) -> None:
    done = yima_sdk("publish", "--api", api.url, cwd=scaffold, env={"YIMA_DEVELOPER_TOKEN": TOKEN})
    assert done.returncode == 0, done.stderr
    assert "ok   manifest" in done.stdout and "status: in_review" in done.stdout
    packed = yima_sdk("pack", "-o", str(tmp_path / "app.zip"), cwd=scaffold)
    digest = packed.stdout.split("digest ")[1].strip()
    assert api.uploads == [
        {"app_id": "cn.example.visits", "digest": digest, "size": (tmp_path / "app.zip").stat().st_size}
    ]
    # CI uploads the archive an earlier step packed, token from --token, answer as JSON
    again = yima_sdk(
        "publish",
        "--archive",
        str(tmp_path / "app.zip"),
        "--api",
        api.url,
        "--token",
        TOKEN,
        "--json",
        cwd=tmp_path,
    )
    assert again.returncode == 0 and json.loads(again.stdout)["digest"] == digest


def test_publish_fails_loudly(scaffold: Path, api: StandInApi) -> None:
    api.fail_checks = True
    failed = yima_sdk("publish", "--api", api.url, "--token", TOKEN, cwd=scaffold)
    assert failed.returncode == 1 and "FAIL manifest: scope purpose too vague" in failed.stdout
    refused = yima_sdk("publish", "--api", api.url, "--token", "ydt_wrong", cwd=scaffold)
    assert refused.returncode == 1 and "auth.invalid_token" in refused.stderr
    missing = yima_sdk("publish", "--api", api.url, cwd=scaffold, env={"YIMA_DEVELOPER_TOKEN": ""})
    assert missing.returncode == 1 and "publish.no_token" in missing.stderr
    assert len(api.uploads) == 1


def test_publish_uses_the_token_login_saved(scaffold: Path, api: StandInApi, own_config: Path) -> None:
    from yima_sdk.login import save_token

    saved = save_token(api.url, TOKEN)
    assert saved.parent == own_config / "yima-sdk"
    done = yima_sdk("publish", cwd=scaffold, env={"YIMA_DEVELOPER_TOKEN": "", "YIMA_API": ""})
    assert done.returncode == 0, done.stderr
    assert f"to {api.url}" in done.stderr and len(api.uploads) == 1


def test_login_shows_the_code_keeps_polling_while_pending_and_saves_nothing_when_cancelled(
    api: StandInApi, own_config: Path, tmp_path: Path
) -> None:
    login = subprocess.Popen(
        [str(BIN), "login", "--server", api.url],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert login.stdout is not None
        shown = [login.stdout.readline() for _ in range(5)]
        assert "  code: BCDF-GHJK\n" in shown and shown[-1].startswith("waiting")
        for _ in range(600):  # pending answers are not failures: it polls again (every second here)
            if api.polls >= 2:
                break
            assert login.poll() is None, login.communicate()
            threading.Event().wait(0.1)
        assert api.polls >= 2
        login.send_signal(signal.SIGINT)
        _, err = login.communicate(timeout=60)
    finally:
        if login.poll() is None:
            login.kill()
    assert login.returncode == 1 and "cancelled" in err
    assert not (own_config / "yima-sdk").exists()
