"""`yima serve --workers 2` as operations run it (the CLI, uvicorn's default loop, PostgreSQL, Redis): a mini-app
published with the SDK is released, called through the gateway and adds its lines to a terminal's scan."""

from __future__ import annotations

import base64
import datetime as dt
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from yima_sdk.holder import Holder
from yima_sdk.terminal import Terminal, TerminalCredentials

from tests.credentials.helpers import public_key_b64
from tests.e2e._real import (
    RealServer,
    UploadsFourTimesAtOnce,
    b64url,
    eventually,
    fresh_database,
    private_folder,
    real_server,
    release_app,
    server_env,
    ship_and_use,
    sign_in,
    verified_resident,
)
from tests.onecard.helpers import card_number, id_number
from tests.platform.conftest import new_app_id, write_probe
from tests.platform.jobs_app import write_jobs_app


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with private_folder() as folder:
        yield folder


@pytest.fixture(scope="module")
def serve(folder: Path) -> Iterator[RealServer]:
    with fresh_database() as dsn:
        env = server_env(dsn, folder / "data", redis=True)
        with real_server("serve", "--workers", "2", "--allow-development", env=env) as server:
            yield server


def test_a_published_app_runs_in_both_workers_and_reaches_the_terminal(
    serve: RealServer, folder: Path
) -> None:
    developer = sign_in(serve, role="developer")
    operator = sign_in(serve, role="operator")
    app_id, resident = ship_and_use(
        serve, write_probe(folder / "apps", new_app_id("serve")), developer, operator
    )
    # Each uvicorn worker runs its own sandbox host; new connections are spread over the workers, and
    # whichever one a call reaches runs the app.
    for _ in range(8):
        with httpx.Client(base_url=serve.url, headers=resident.headers, timeout=30) as fresh:
            r = fresh.get(f"/v1/miniapps/{app_id}/api/whoami")
            assert r.status_code == 200, r.text
    assert "Traceback" not in serve.output(), serve.output()[-4000:]


def test_the_workers_share_one_database_of_jobs_and_run_each_job_once(
    serve: RealServer, folder: Path
) -> None:
    """Each uvicorn worker is a node with its own job runner; both poll the one database for due jobs and claim
    them with FOR UPDATE SKIP LOCKED under a lease. A burst of jobs due at once runs, every one exactly once
    (each run adds 1 to the job's own counter)."""
    developer = sign_in(serve, role="developer")
    operator = sign_in(serve, role="operator")
    app_id, _ = release_app(serve, write_jobs_app(folder / "apps", new_app_id("jobs")), developer, operator)
    resident = sign_in(serve)
    api = f"/v1/miniapps/{app_id}/api"

    def burst() -> list[str]:
        r = resident.post(f"{api}/burst/30")  # refused until the release reached the worker it lands on
        assert r.status_code == 200, r.text
        return list(r.json())

    jobs = eventually(burst)
    assert len(set(jobs)) == 30

    def counts() -> dict[str, int] | None:
        r = resident.post(f"{api}/counts", json=jobs)
        assert r.status_code == 200, r.text
        found: dict[str, int] = r.json()
        return found if all(found.values()) else None

    assert eventually(counts, limit_s=60) == dict.fromkeys(jobs, 1)
    assert "Traceback" not in serve.output(), serve.output()[-4000:]


def test_an_offline_upload_sent_to_both_workers_at_once_charges_the_fare_in_force_once(
    serve: RealServer, folder: Path, tmp_path: Path
) -> None:
    """The bus app released from its folder; its fares clerk publishes a table; a terminal on the SDK syncs it,
    prices a ride code offline by the version it holds (a newer one came into force since), and its upload goes
    four times at once over fresh connections (both workers): settlement charges the rider once, the fare of the
    version in force at the ride."""
    developer = sign_in(serve, role="developer")
    operator = sign_in(serve, role="operator")
    source = Path(__file__).resolve().parents[2] / "miniapps" / "bus"
    app_dir = folder / "apps" / "bus"
    shutil.copytree(source, app_dir, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    manifest = app_dir / "miniapp.toml"  # under a developer's own id: `gov.` is the county's namespace
    manifest.write_text(manifest.read_text().replace('"gov.guangde.bus"', f'"{new_app_id("bus")}"'))
    app_id, _ = release_app(serve, app_dir, developer, operator)
    r = operator.put(f"/v1/admin/miniapps/scenes/bus/{app_id}", json={"app_id": app_id})
    assert r.status_code == 200, r.text
    clerk = verified_resident(serve)
    body = {"account_id": clerk.get("/v1/me").json()["id"], "role": "fares", "unit": None}
    assert operator.post(f"/v1/miniapps/{app_id}/staff", json=body).status_code == 201
    start = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
    table = {
        "version": 1,
        "effective_from": start.isoformat(),
        "lines": {"1": {"name": "1路", "flat_fen": 200}},
    }

    def published() -> bool:  # refused until the release reached the worker it lands on
        r = clerk.put(f"/v1/miniapps/{app_id}/api/fares/tables/1", json=table)
        assert r.status_code == 201, r.text
        return True

    eventually(published)

    # A resident whose card the issuer recorded links it and certifies her phone for offline ride codes.
    rider = sign_in(serve)
    number, card = id_number(), card_number()
    assert rider.put("/v1/me/identity", json={"name": "李小红", "id_number": number}).status_code == 200
    (tmp_path / "cards.csv").write_text(f"{number},{card}\n")
    done = serve.yima("onecard", "import-cards", str(tmp_path / "cards.csv"))
    assert done.returncode == 0, done.stderr
    assert rider.post("/v1/me/onecard", json={"ss_card_number": card}).status_code == 200
    holder = Holder.generate()
    r = rider.post("/v1/me/devices", json={"public_key": b64url(holder.device_public_key)})
    assert r.status_code == 201, r.text
    holder.install_certificate(base64.urlsafe_b64decode(r.json()["certificate"] + "=="))

    key = Ed25519PrivateKey.generate()
    body = {
        "name": "1路 bus 03",
        "kind": "bus",
        "scene": app_id,
        "unit": "line:1",
        "public_key": public_key_b64(key),
    }
    registered = operator.post("/v1/admin/terminals", json=body).json()
    info = rider.get("/v1/trust-list/info").json()
    roots = {kid: base64.urlsafe_b64decode(k + "==") for kid, k in info["root_public_keys"].items()}
    transport = UploadsFourTimesAtOnce(
        serve.url, TerminalCredentials(registered["id"], key), token_endpoint=registered["token_endpoint"]
    )
    terminal = Terminal(
        root_public_keys=roots, db_path=str(tmp_path / "bus-03.sqlite"), clock=time.time, clock_source="ntp",
        transport=transport, app_id=app_id,
    )  # fmt: skip
    try:
        terminal.refresh()  # it holds version 1; the clerk then publishes version 2 (3 yuan), which it misses
        switch = max(start, dt.datetime.now(dt.UTC)) + dt.timedelta(seconds=3)
        v2 = table | {"version": 2, "effective_from": switch.isoformat()}
        v2["lines"] = {"1": {"name": "1路", "flat_fen": 300}}
        r = clerk.put(f"/v1/miniapps/{app_id}/api/fares/tables/2", json=v2)
        assert r.status_code == 201, r.text
        eventually(lambda: terminal.now() > switch.timestamp() + 1, limit_s=30)
        fare = terminal.fare("1")
        assert fare == 200
        decision = terminal.scan(holder.ride_code(terminal.now()), fare)
        assert decision.result == "accept", decision
        assert terminal.upload_pending() == 1
        assert terminal.server_verdict(decision.record_id) == ("accepted", None)
    finally:
        terminal.close()
    # Charged once, the fare in force at the ride (below a zero balance, as far as the offline floor allows).
    assert rider.get("/v1/me/onecard").json()["balance_fen"] == -300
    assert "Traceback" not in serve.output(), serve.output()[-4000:]


def test_a_withdrawn_consent_holds_at_once_in_both_workers(serve: RealServer, folder: Path) -> None:
    """Each worker keeps the consents it read (server/platform/residents/consents.py); a withdrawal made through
    one worker is announced once committed, so the app is refused the scope at the next call in either worker."""
    developer = sign_in(serve, role="developer")
    operator = sign_in(serve, role="operator")
    app_id, resident = ship_and_use(
        serve, write_probe(folder / "apps", new_app_id("consent")), developer, operator
    )
    consent = f"/v1/me/consents/{app_id}/birth_date"

    def ages(n: int = 8) -> set[int]:
        """The app's answer to `/age` on fresh connections (spread over both workers), as a set of statuses."""
        statuses = set()
        for _ in range(n):
            with httpx.Client(base_url=serve.url, headers=resident.headers, timeout=30) as fresh:
                statuses.add(fresh.get(f"/v1/miniapps/{app_id}/api/age").status_code)
        return statuses

    assert resident.put(consent, json={"granted": True}).status_code == 200
    assert ages() == {200}  # both workers have read (and kept) the grant
    for _ in range(3):  # withdrawn through whichever worker: refused at once by both
        assert resident.delete(consent).status_code == 204
        assert ages() == {403}
        assert resident.put(consent, json={"granted": True}).status_code == 200
        assert ages() == {200}
