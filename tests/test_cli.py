"""The `yima` command as a user runs it: real processes, the embedded PostgreSQL, Ctrl-C, shared settings."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, valid_id_number

YIMA = str(Path(sys.executable).parent / "yima")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIMA_")}
    env["YIMA_DEV_FIRST_PARTY"] = "0"  # the first-party apps are tested in tests/e2e/test_real_medical.py
    env.update(extra)
    return env


def _postgres_processes(data_dir: Path) -> list[str]:
    out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "postgres" in line and str(data_dir) in line]


def _wait_ready(url: str, proc: subprocess.Popen[str], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"yima dev exited early:\n{proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError("yima dev did not become ready")


@pytest.fixture
def dev_data_dir():
    # Not pytest's tmp_path: as root, the embedded PostgreSQL runs as an unprivileged user that must traverse the
    # folder's parents, and pytest keeps resetting its own temp root to 0700 (other sessions may run meanwhile).
    folder = Path(tempfile.mkdtemp(prefix="yima-dev-test-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder / "data"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_dev_runs_embedded_login_identity_admin_grant_and_clean_shutdown(dev_data_dir):
    data_dir = dev_data_dir
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [YIMA, "dev", "--data-dir", str(data_dir), "--port", str(port)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_ready(url, proc)
        phone = "13800138000"  # the seeded demo resident
        assert httpx.post(f"{url}/v1/auth/otp", json={"phone": phone}).status_code == 202
        outbox = httpx.get(f"{url}/v1/dev/sms-outbox", params={"phone": phone}).json()
        code = outbox[-1]["code"]
        tokens = httpx.post(f"{url}/v1/auth/token", json={"phone": phone, "code": code}).json()
        headers = {"authorization": f"Bearer {tokens['access_token']}"}
        me = httpx.get(f"{url}/v1/me", headers=headers).json()
        assert me["verified"] is True  # seeded with a real name
        # One-card's seed opened the demo resident's card, reaching identity through its port.
        card = httpx.get(f"{url}/v1/me/onecard", headers=headers)
        assert card.status_code == 200 and card.json()["card_number"] == "A******78", card.text
        # A new resident sets a real name.
        other = "13912345678"
        httpx.post(f"{url}/v1/auth/otp", json={"phone": other})
        code = httpx.get(f"{url}/v1/dev/sms-outbox", params={"phone": other}).json()[-1]["code"]
        t2 = httpx.post(f"{url}/v1/auth/token", json={"phone": other, "code": code}).json()
        h2 = {"authorization": f"Bearer {t2['access_token']}"}
        r = httpx.put(
            f"{url}/v1/me/identity",
            json={"name": "赵六", "id_number": valid_id_number(seq="321")},
            headers=h2,
        )
        assert r.status_code == 200 and r.json()["verified"] is True
        # `yima admin grant` acts on the database this `yima dev` is using.
        grant = subprocess.run(
            [YIMA, "admin", "grant", "--phone", other, "--role", "operator", "--data-dir", str(data_dir)],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert grant.returncode == 0, grant.stderr
        assert "granted" in grant.stdout
        # A role change ends the account's sessions (docs/security.md): the next login carries the role.
        ended = httpx.post(f"{url}/v1/auth/refresh", json={"refresh_token": t2["refresh_token"]})
        assert ended.status_code == 401
        httpx.post(f"{url}/v1/auth/otp", json={"phone": other})
        code = httpx.get(f"{url}/v1/dev/sms-outbox", params={"phone": other}).json()[-1]["code"]
        t3 = httpx.post(f"{url}/v1/auth/token", json={"phone": other, "code": code}).json()
        me2 = httpx.get(f"{url}/v1/me", headers={"authorization": f"Bearer {t3['access_token']}"}).json()
        assert "operator" in me2["roles"]
        # The banner's command scans the resident's code as the seeded demo clinic terminal.
        payload = httpx.get(f"{url}/v1/me/codes/ankang", headers=headers).json()["payload"]
        scanned = subprocess.run(
            [YIMA, "terminal", "scan", "--data-dir", str(data_dir), "--url", url, payload],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert scanned.returncode == 0, scanned.stderr
        assert json.loads(scanned.stdout)["result"] == "accept"
        assert _postgres_processes(data_dir)
    finally:
        proc.send_signal(signal.SIGINT)
        output, errors = proc.communicate(timeout=60)
    assert proc.returncode == 0, errors
    assert "Try it:" in output
    assert f"Resident app (a phone page; installable): {url}/app/" in output
    assert f"Operator console: {url}/console/" in output and f"{url}/terminal/" in output
    # The banner names the demo terminal's key file, the command to scan as it, and every demo account.
    assert str(data_dir.resolve() / "demo-clinic-terminal.json") in output
    assert f"yima terminal scan --data-dir {data_dir} --url {url} '<payload>'" in output
    assert "13900139000" in output and "13700137000" in output
    assert _postgres_processes(data_dir) == []  # Ctrl-C stopped the embedded PostgreSQL: no orphans
    # Quiet: the embedded PostgreSQL's initdb and pg_ctl runs are one line, and a clean Ctrl-C logs nothing
    # alarming (no traceback, no "Future exception was never retrieved", no warning or error).
    lines = errors.splitlines()
    assert [line for line in lines if '"pgserver"' in line] == []
    assert len([line for line in lines if "embedded PostgreSQL initialised and started" in line]) == 1
    for alarming in ("Traceback", "never retrieved", '"level": "WARNING"', '"level": "ERROR"', "CRITICAL"):
        assert alarming not in errors, errors
    # Demo seeding is idempotent: a second start reuses the folder and seeds again without error.
    proc2 = subprocess.Popen(
        [YIMA, "dev", "--data-dir", str(data_dir), "--port", str(port)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_ready(url, proc2)
    finally:
        proc2.send_signal(signal.SIGINT)
        proc2.communicate(timeout=60)
    assert proc2.returncode == 0
    assert _postgres_processes(data_dir) == []


def test_dev_on_a_taken_port_says_so_before_any_banner(tmp_path):
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        r = subprocess.run(
            [YIMA, "dev", "--data-dir", str(tmp_path / "data"), "--port", str(port)],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 1
    assert f"127.0.0.1:{port}" in r.stderr and "--port" in r.stderr
    assert "running" not in r.stdout
    assert not (tmp_path / "data" / "pg").exists()  # it stopped before starting the embedded PostgreSQL


def test_make_dev_takes_a_port(repo_root):
    r = subprocess.run(
        ["make", "-n", "-C", repo_root, "dev", "PORT=8123"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert "yima dev --port 8123" in r.stdout


def test_serve_refuses_many_workers_without_redis(database_url):
    r = subprocess.run(
        [YIMA, "serve", "--workers", "2"],
        env=_env(YIMA_DATABASE_URL=database_url, YIMA_MODE="development"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "YIMA_REDIS_URL" in r.stderr and "more than one worker" in r.stderr


def test_bad_setting_stops_start_up_naming_the_variable():
    r = subprocess.run(
        [YIMA, "serve"], env=_env(YIMA_PORT="eighty"), capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2
    assert "YIMA_PORT" in r.stderr


def test_migrate_and_openapi_commands(database_url, tmp_path):
    r = subprocess.run(
        [YIMA, "migrate", "--database-url", database_url],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "migration" in r.stdout
    out = tmp_path / "openapi.json"
    r = subprocess.run(
        [YIMA, "openapi", "--output", str(out)], env=_env(), capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert '"/v1/auth/otp"' in out.read_text()


def test_the_test_suites_own_variables_do_not_stop_the_cli(database_url, settings, monkeypatch, capsys):
    """README's overrides for `make test` (YIMA_TEST_ADMIN_DSN, YIMA_TEST_REDIS_URL) stay set while the suite
    runs the CLI, in a child process and in-process alike; the strict settings check must not refuse them."""
    from server.cli import main
    from tests.conftest import ADMIN_DSN, REDIS_URL

    suite = {"YIMA_TEST_ADMIN_DSN": ADMIN_DSN, "YIMA_TEST_REDIS_URL": REDIS_URL}
    r = subprocess.run(
        [YIMA, "migrate", "--database-url", database_url],
        env=_env(**suite),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    for name, value in suite.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("YIMA_MODE", "test")
    monkeypatch.setenv("YIMA_MASTER_KEY", settings.master_key)
    assert main(["keys", "list", "--database-url", database_url]) == 0
    assert "trust list version" in capsys.readouterr().out


def test_the_commands_are_the_readmes_and_come_from_the_apps_plugins(settings):
    """Domains add their commands from their own plugin; `yima --help` offers exactly the README's commands."""
    from server.app import PLUGIN_TYPES, create_app

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    documented = {
        line.split("`yima ")[1].split()[0].rstrip("`")
        for line in readme.splitlines()
        if line.startswith("| `yima ")
    }
    r = subprocess.run([YIMA, "--help"], env=_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    offered = set(r.stdout.split("{", 1)[1].split("}", 1)[0].split(","))
    assert offered == documented
    plugins = create_app(settings).plugins
    assert {type(plugin) for plugin in plugins if type(plugin).__module__.startswith("server.")} == set(
        PLUGIN_TYPES
    )
    started = [type(plugin) for plugin in plugins.init if type(plugin).__module__.startswith("server.")]
    assert started == [
        kind for kind in PLUGIN_TYPES if kind in started
    ]  # one order: the app's, the commands'
