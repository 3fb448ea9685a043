"""`yima-sdk login`'s device login: the API's rules (expiry, single use, slow_down, wrong codes, audit) with an
injected clock, then the real CLI against a real `yima serve` process, whose saved token `publish` then uses."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REDIS_URL, AppClient, free_port, login, login_with_role, random_phone
from tests.test_cli import YIMA, _env, _wait_ready

YIMA_SDK = str(Path(sys.executable).parent / "yima-sdk")
T0 = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock(client: AppClient) -> Clock:
    fixed = Clock()
    client.app.state.platform.device_login.clock = fixed
    return fixed


async def test_confirmed_code_gives_one_token_after_pending_and_slow_down(
    client: AppClient, clock: Clock
) -> None:
    r = await client.post("/v1/developer/device")
    assert r.status_code == 201, r.text
    started = r.json()
    assert started["interval"] == 5 and started["expires_in"] == 600
    assert started["verification_uri"].endswith("/v1/developer/device/confirm")
    poll = {"device_code": started["device_code"]}

    r = await client.post("/v1/developer/device/token", json=poll)
    assert (r.status_code, r.json()["code"]) == (400, "device.authorization_pending")
    # polled again at once: slow down, and the interval grows by 5 s each time (RFC 8628 §3.5)
    r = await client.post("/v1/developer/device/token", json=poll)
    assert (r.status_code, r.json()["code"]) == (429, "device.slow_down")
    assert r.headers["retry-after"] == "10"
    clock.now = at(6)  # past the first interval, not past the grown one
    r = await client.post("/v1/developer/device/token", json=poll)
    assert (r.status_code, r.headers["retry-after"]) == (429, "15")
    clock.now = at(22)
    r = await client.post("/v1/developer/device/token", json=poll)
    assert r.json()["code"] == "device.authorization_pending"

    developer = await login_with_role(client, "developer")
    typed = started["user_code"].lower().replace("-", " ")  # as someone might type it
    r = await client.post(
        "/v1/developer/device/confirm", json={"user_code": typed}, headers=developer.headers
    )
    assert r.status_code == 204, r.text
    # a code confirms one sign-in, once
    r = await client.post(
        "/v1/developer/device/confirm", json={"user_code": started["user_code"]}, headers=developer.headers
    )
    assert (r.status_code, r.json()["code"]) == (404, "device.user_code_unknown")

    clock.now = at(60)
    r = await client.post("/v1/developer/device/token", json=poll)
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert token.startswith("ydt_")
    # the token is a working developer token of the confirming account
    r = await client.get("/v1/developer/apps/test.nobody.app", headers={"authorization": f"Bearer {token}"})
    assert r.json()["code"] != "registry.token_invalid", r.text
    # single use: the device code hands out no second token
    clock.now = at(120)
    r = await client.post("/v1/developer/device/token", json=poll)
    assert (r.status_code, r.json()["code"]) == (409, "device.code_used")

    async with client.app.state.core.db.connection() as conn:
        rows = await conn.fetch(
            "SELECT actor, action, target, details FROM audit_log WHERE actor = $1 ORDER BY seq",
            f"account:{developer.account_id}",
        )
    assert [(r["action"], r["target"].split(":")[0]) for r in rows] == [
        ("developer.device_login_confirmed", "device_login"),
        ("developer.token_issued", "developer_token"),
    ]
    assert rows[1]["details"]["via"] == rows[0]["target"]


async def test_codes_expire_and_wrong_codes_get_clear_answers(client: AppClient, clock: Clock) -> None:
    started = (await client.post("/v1/developer/device")).json()
    developer = await login_with_role(client, "developer")
    resident = await login(client)
    confirm = {"user_code": started["user_code"]}

    r = await client.post("/v1/developer/device/confirm", json=confirm, headers=resident.headers)
    assert r.status_code == 403  # only a developer account may vouch for a CLI
    r = await client.post("/v1/developer/device/confirm", json=confirm)
    assert r.status_code == 401
    r = await client.post(
        "/v1/developer/device/confirm", json={"user_code": "not a code"}, headers=developer.headers
    )
    assert (r.status_code, r.json()["code"]) == (400, "request.invalid")
    r = await client.post(
        "/v1/developer/device/confirm", json={"user_code": "AAAA-AAAA"}, headers=developer.headers
    )
    assert (r.status_code, r.json()["code"]) == (404, "device.user_code_unknown")  # vowels: never issued
    r = await client.post("/v1/developer/device/token", json={"device_code": "made-up"})
    assert (r.status_code, r.json()["code"]) == (400, "device.code_invalid")

    clock.now = at(600)
    r = await client.post("/v1/developer/device/confirm", json=confirm, headers=developer.headers)
    assert (r.status_code, r.json()["code"]) == (410, "device.expired")
    r = await client.post("/v1/developer/device/token", json={"device_code": started["device_code"]})
    assert (r.status_code, r.json()["code"]) == (410, "device.expired")


async def test_wrong_guesses_are_rate_limited_per_developer(client: AppClient, clock: Clock) -> None:
    developer = await login_with_role(client, "developer")
    answers = [
        (
            await client.post(
                "/v1/developer/device/confirm", json={"user_code": "BBBB-BBBB"}, headers=developer.headers
            )
        ).status_code
        for _ in range(11)
    ]
    assert answers == [404] * 10 + [429]


# ---- the real CLI against a real server process -------------------------------------------------------------


@pytest.fixture
def server(database_url: str, master_key: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = _env(
        YIMA_DATABASE_URL=database_url,
        YIMA_REDIS_URL=REDIS_URL,
        YIMA_MODE="development",
        YIMA_MASTER_KEY=master_key,
        YIMA_DATA_DIR=str(tmp_path / "data"),
        YIMA_DEVELOPER_LOGIN_INTERVAL_S="1",
    )
    proc = subprocess.Popen(
        [YIMA, "serve", "--allow-development", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)


def developer_session(
    url: str, database_url: str, master_key: str, phone: str, role: str = "developer"
) -> dict[str, str]:
    """A developer (or `role`) account as an administrator makes one (`yima admin grant`), signed in by OTP."""
    granted = subprocess.run(
        [YIMA, "admin", "grant", "--phone", phone, "--role", role],
        env=_env(YIMA_DATABASE_URL=database_url, YIMA_MASTER_KEY=master_key, YIMA_MODE="development"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert granted.returncode == 0, granted.stderr
    assert httpx.post(f"{url}/v1/auth/otp", json={"phone": phone}).status_code == 202
    code = httpx.get(f"{url}/v1/dev/sms-outbox", params={"phone": phone}).json()[-1]["code"]
    tokens = httpx.post(f"{url}/v1/auth/token", json={"phone": phone, "code": code}).json()
    return {"authorization": f"Bearer {tokens['access_token']}"}


def test_login_with_the_cli_saves_a_private_token_that_publish_uses(
    server: str, database_url: str, master_key: str, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    env = _env(XDG_CONFIG_HOME=str(config))
    login_cli = subprocess.Popen(
        [YIMA_SDK, "login", "--server", server],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert login_cli.stdout is not None
        shown = []
        for line in login_cli.stdout:
            shown.append(line)
            if line.startswith("waiting"):
                break
        user_code = next(line.split()[-1] for line in shown if line.strip().startswith("code:"))
        headers = developer_session(server, database_url, master_key, "13700137000")
        r = httpx.post(
            f"{server}/v1/developer/device/confirm", json={"user_code": user_code}, headers=headers
        )
        assert r.status_code == 204, r.text
        out, err = login_cli.communicate(timeout=120)
    finally:
        if login_cli.poll() is None:
            login_cli.kill()
            login_cli.communicate()
    assert login_cli.returncode == 0, err
    assert "signed in to " + server in out

    saved = config / "yima-sdk" / "credentials.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    stored = json.loads(saved.read_text())
    assert stored["default"] == server and stored["tokens"][server].startswith("ydt_")
    assert stored["tokens"][server] not in out + err  # the token is saved, never printed

    # register and publish with no token and no --api: the saved login supplies both
    namespace = f"test.d{secrets.token_hex(4)}"
    app_id = f"{namespace}.app"
    subprocess.run([YIMA_SDK, "new", "app", "--id", app_id], cwd=tmp_path, env=env, check=True)
    operator = developer_session(server, database_url, master_key, random_phone(), "operator")
    developer_id = httpx.get(f"{server}/v1/me", headers=headers).json()["id"]
    r = httpx.post(
        f"{server}/v1/admin/developer-orgs",
        json={"name": "Device Login Co.", "namespace": namespace, "members": [developer_id]},
        headers=operator,
    )
    assert r.status_code == 201, r.text
    asked = subprocess.run(
        [YIMA_SDK, "register"], cwd=tmp_path / "app", env=env, capture_output=True, text=True, timeout=120
    )
    assert asked.returncode == 0 and "requested" in asked.stdout, asked.stdout + asked.stderr
    r = httpx.post(
        f"{server}/v1/admin/app-ids/{app_id}/decision",
        json={"decision": "approve", "reason": "domain verified"},
        headers=operator,
    )
    assert r.status_code == 200, r.text
    published = subprocess.run(
        [YIMA_SDK, "publish", "--json"],
        cwd=tmp_path / "app",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["status"] == "in_review"
    assert f"to {server}" in published.stderr
