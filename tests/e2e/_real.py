"""The real processes, for end-to-end tests: `yima dev` and `yima serve` started as a user starts them (the CLI,
uvicorn with its default loop) on a free port, waited for on /health and stopped with Ctrl-C; and the steps people
and terminals take against them over HTTP (OTP sign-in through the dev outbox, real name, roles, terminals).

Reusable by any test that needs a real server:

    with private_folder() as folder, fresh_database() as dsn:
        with real_server("serve", "--workers", "2", env=server_env(dsn, folder, redis=True)) as server:
            operator = sign_in(server, role="operator")
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from yima_sdk.terminal import HttpTransport

from server.security.master_key import new_master_key_text
from tests.conftest import ADMIN_DSN, REDIS_URL, free_port, random_phone
from tests.credentials.helpers import client_assertion, public_key_b64, random_id_number, token_form

YIMA = str(Path(sys.executable).parent / "yima")


@contextlib.contextmanager
def private_folder(prefix: str = "yima-e2e-") -> Iterator[Path]:
    """A folder under /tmp, traversable by everyone: the sandbox's unprivileged uid reads unpacked apps below
    it and, as root, the embedded PostgreSQL runs as another user too (pytest's tmp_path is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A database of its own (the session's one holds apps other tests released, which a real server would
    load at start-up); dropped afterwards."""
    name = f"yima_e2e_{os.getpid()}_{secrets.token_hex(3)}"
    base = ADMIN_DSN.rpartition("/")[0]

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def server_env(database_url: str, data_dir: Path, *, redis: bool, **extra: str) -> dict[str, str]:
    """The environment of a real server: none of the caller's YIMA_* settings, development mode (the SMS
    outbox), a fresh master key, a private Redis namespace when Redis is used."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIMA_")}
    env.update(
        YIMA_MODE="development",
        YIMA_DATA_DIR=str(data_dir),
        YIMA_MASTER_KEY=new_master_key_text(),
        YIMA_DEV_FIRST_PARTY="0",  # `yima dev` without the first-party apps unless a test asks for them
        # A scan answer waits 300 ms for the bound app's lines, then marks them missing; on a loaded test machine
        # a live app's scan handler (a sandbox round trip and its storage calls) can take longer. The tests
        # check the lines an app shows, not that deadline (tests/platform/test_scan_events.py does).
        YIMA_PLATFORM_SCAN_DEADLINE_MS="10000",
    )
    if database_url:
        env["YIMA_DATABASE_URL"] = database_url
    if redis:
        env.update(YIMA_REDIS_URL=REDIS_URL, YIMA_REDIS_NAMESPACE=f"yimae2e-{secrets.token_hex(4)}:")
    env.update(extra)
    return env


@dataclass
class RealServer:
    url: str
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def yima(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Another `yima` command with the server's settings (e.g. `admin grant` on its database)."""
        return subprocess.run(
            [YIMA, *argv], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )


@contextlib.contextmanager
def real_server(
    command: str, *args: str, env: dict[str, str], ready_s: float = 120, yima: str = YIMA
) -> Iterator[RealServer]:
    """Run `yima <command> <args> --port <free port>` until the block ends, then Ctrl-C it and wait: the
    process (uvicorn, its workers, the sandbox workers, an embedded PostgreSQL) is gone when this returns.
    `yima`: another install's command (a benchmark comparing two checkouts, each with its own venv)."""
    port = free_port()
    log = Path(env["YIMA_DATA_DIR"]) / f"yima-{command}-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [yima, command, *args, "--port", str(port)], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    server = RealServer(f"http://127.0.0.1:{port}", proc, env, log)
    try:
        _wait_healthy(server, ready_s)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def kill_hard(server: RealServer) -> None:
    """SIGKILL the server and every process it started (uvicorn, sandbox workers), as a power cut would: no
    shutdown hook runs. Its database (an external one) stays up."""
    import psutil

    root = psutil.Process(server.proc.pid)
    doomed = [*root.children(recursive=True), root]
    for proc in doomed:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(doomed, timeout=30)
    server.proc.wait(timeout=30)


def _wait_healthy(server: RealServer, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"yima exited early ({server.proc.returncode}):\n{server.output()[-4000:]}")
        try:
            if httpx.get(server.url + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)  # polling for readiness, not waiting out a time
    raise AssertionError(f"yima did not become healthy in {limit_s}s:\n{server.output()[-4000:]}")


def eventually(attempt: Any, limit_s: float = 15.0) -> Any:
    """Retry `attempt()` until it returns a truthy value (or raise the last AssertionError): a transition made
    through one server process reaches the others over pub/sub a moment later."""
    deadline = time.monotonic() + limit_s
    while True:
        try:
            value = attempt()
            if value:
                return value
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


# ---- people and terminals ------------------------------------------------------------------------------


def sign_in(server: RealServer, phone: str | None = None, *, role: str | None = None) -> httpx.Client:
    """A signed-in client (Authorization set). OTP and outbox travel on one kept-alive connection, so with
    several workers both reach the worker whose console SMS sender holds the message."""
    phone = phone or random_phone()
    if role is not None:
        done = server.yima("admin", "grant", "--phone", phone, "--role", role)
        assert done.returncode == 0, done.stderr
    client = httpx.Client(base_url=server.url, timeout=30)
    r = client.post("/v1/auth/otp", json={"phone": phone})
    assert r.status_code == 202, r.text
    outbox = client.get("/v1/dev/sms-outbox", params={"phone": phone}).json()
    r = client.post("/v1/auth/token", json={"phone": phone, "code": outbox[-1]["code"]})
    assert r.status_code == 200, r.text
    client.headers["authorization"] = f"Bearer {r.json()['access_token']}"
    return client


def verified_resident(server: RealServer) -> httpx.Client:
    resident = sign_in(server)
    for _ in range(5):  # a random ID number may be taken already
        r = resident.put("/v1/me/identity", json={"name": "李小红", "id_number": random_id_number()})
        if r.status_code != 409:
            break
    assert r.status_code == 200, r.text
    return resident


def enrol_terminal(
    server: RealServer, operator: httpx.Client, kind: str, scene: str, unit: str | None = None
) -> httpx.Client:
    """Register a terminal at `scene` (serving staff `unit`, if given) and sign it in with its own key (client
    assertion -> access token)."""
    key = Ed25519PrivateKey.generate()
    body = {"name": f"{kind} gate", "kind": kind, "scene": scene, "public_key": public_key_b64(key)}
    if unit is not None:
        body["unit"] = unit
    r = operator.post("/v1/admin/terminals", json=body)
    assert r.status_code == 201, r.text
    terminal_id = r.json()["id"]
    terminal = httpx.Client(base_url=server.url, timeout=30)
    assertion = client_assertion(terminal_id, key, aud=f"{server.url}/v1/terminal/token")
    r = terminal.post("/v1/terminal/token", data=token_form(assertion))
    assert r.status_code == 200, r.text
    terminal.headers["authorization"] = f"Bearer {r.json()['access_token']}"
    return terminal


def scan_code(terminal: httpx.Client, resident: httpx.Client) -> dict[str, Any]:
    """The resident shows a fresh Ankang code; the terminal scans it online."""
    r = resident.get("/v1/me/codes/ankang")
    assert r.status_code == 200, r.text
    r = terminal.post(
        "/v1/scans", json={"payload": r.json()["payload"], "scanned_at": int(time.time() * 1000)}
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


# ---- a mini-app's whole way, as its developer, an operator, a resident and a terminal go it --------------


def release_app(
    server: RealServer, folder: Path, developer: httpx.Client, operator: httpx.Client
) -> tuple[str, str]:
    """Pack and upload `folder` with the SDK as the developer; approve and release it to everyone as the
    operator. Returns the app id and version."""
    from yima_sdk.pack import pack
    from yima_sdk.publish import register, upload

    r = developer.post("/v1/developer/tokens")
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    package = pack(folder)
    app_id, version = package.manifest.id, package.manifest.version
    # the operator gives the developer's organisation the id's namespace; the developer asks; the operator approves
    developer_id = developer.get("/v1/me").json()["id"]
    namespace = app_id.rpartition(".")[0]
    r = operator.post(
        "/v1/admin/developer-orgs",
        json={"name": f"e2e {namespace}", "namespace": namespace, "members": [developer_id]},
    )
    assert r.status_code == 201, r.text
    assert register(app_id, api=server.url, token=token).status == "pending"
    r = operator.post(f"/v1/admin/app-ids/{app_id}/decision", json={"decision": "approve", "reason": "e2e"})
    assert r.status_code == 200, r.text
    uploaded = upload(package, api=server.url, token=token)
    assert uploaded.status == "in_review", uploaded
    admin = f"/v1/admin/miniapps/{app_id}"
    r = operator.post(f"{admin}/versions/{version}/review", json={"decision": "approve", "reason": "e2e"})
    assert r.status_code == 200, r.text
    r = operator.post(f"{admin}/release", json={"version": version, "percent": 100, "whitelist": []})
    assert r.status_code == 200, r.text
    return app_id, version


def ship_and_use(
    server: RealServer, folder: Path, developer: httpx.Client, operator: httpx.Client
) -> tuple[str, httpx.Client]:
    """Publish `folder` (the probe app) with the SDK, approve and release it, call it through the gateway as a
    resident, bind it to a clinic scene and scan the resident's code there: the app's lines reach the terminal.
    Returns the app id and the resident's client."""
    app_id, version = release_app(server, folder, developer, operator)
    resident = verified_resident(server)

    def whoami() -> dict[str, Any]:
        r = resident.get(f"/v1/miniapps/{app_id}/api/whoami")
        assert r.status_code == 200, r.text
        return dict(r.json())

    me = eventually(whoami)
    assert me["user_id"].startswith("u_") and me["version"] == version

    scene = f"clinic-{secrets.token_hex(3)}"
    r = operator.put(f"/v1/admin/miniapps/scenes/clinic/{scene}", json={"app_id": app_id})
    assert r.status_code == 200, r.text
    terminal = enrol_terminal(server, operator, "clinic", scene)

    def scanned() -> tuple[dict[str, Any], httpx.Client]:
        # A fresh resident per attempt (a code is accepted once) who has used the app: an app learns only of
        # residents who used it or consented (docs/security.md). With several server processes, the one
        # answering may learn of the binding, or finish starting the app's workers, a moment after the
        # operator's answer; until then the terminal hears that the app is missing.
        who = verified_resident(server)
        assert who.get(f"/v1/miniapps/{app_id}/api/whoami").status_code == 200
        answer = scan_code(terminal, who)
        assert answer["result"] == "accept", answer
        assert answer.get("miniapp", {}).get("missing") is False, f"no app part yet: {answer}"
        return answer, who

    answer, scanned_by = eventually(scanned)
    assert answer["miniapp"] == {
        "app_id": app_id,
        "lines": ["Queue number 7", "Room 203"],
        "missing": False,
        "reason": None,
    }, answer
    # the scan handler ran in the sandbox with that resident's app-scoped id
    seen_as = scanned_by.get(f"/v1/miniapps/{app_id}/api/whoami").json()["user_id"]
    r = resident.get(f"/v1/miniapps/{app_id}/api/docs/last-scan")
    assert r.status_code == 200 and r.json()["doc"]["value"] == {"user": seen_as, "scene": scene}, r.text
    return app_id, resident


# ---- terminals on the terminal SDK ---------------------------------------------------------------------


class UploadsFourTimesAtOnce(HttpTransport):
    """A terminal on a flaky link whose retries overlap: every upload goes four times at once."""

    def upload_batch(self, body: bytes) -> bytes:
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: HttpTransport.upload_batch(self, body), range(4)))
        assert len(set(answers)) == 1, answers  # every copy hears the same verdicts
        return answers[0]


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
