"""The developer's real publish path: the yima app on a real loopback HTTP server, `yima-sdk pack` and
`yima-sdk publish` run as the developer runs them (a subprocess, headless, token from YIMA_DEVELOPER_TOKEN), then
review, release, consent and a gateway call answered by the sandboxed example app."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from litestar import Litestar

from tests.conftest import AppClient, free_port, login, login_with_role, valid_id_number

LIBRARY = Path(__file__).resolve().parents[2] / "docs" / "examples" / "library"
YIMA_SDK = str(Path(sys.executable).parent / "yima-sdk")


@pytest.fixture
async def live(app: Litestar) -> AsyncIterator[AppClient]:
    """The app (real sandbox) behind uvicorn on a free 127.0.0.1 port; a client speaking real HTTP to it."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on", access_log=False)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # readiness, not time: uvicorn flips this once the socket listens
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        async with AppClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            c.app = app  # login() reads the OTP from the app's console SMS sender
            yield c
    finally:
        server.should_exit = True
        await task


@dataclass
class Run:
    code: int
    out: str
    err: str


async def yima_sdk(*args: str, token: str) -> Run:
    """The CLI as a developer's CI runs it: its own process, only the token in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIMA_")}
    env["YIMA_DEVELOPER_TOKEN"] = token
    proc = await asyncio.create_subprocess_exec(
        YIMA_SDK, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def library_copy(root: Path) -> tuple[Path, str]:
    """docs/examples/library as shipped, under an app id (and namespace) of its own: other tests of this session's
    database publish the example too."""
    folder = root / "library"
    shutil.copytree(LIBRARY, folder, ignore=shutil.ignore_patterns("dist", "__pycache__"))
    app_id = f"test.p{secrets.token_hex(4)}.library"
    manifest = folder / "miniapp.toml"
    text, replaced = re.subn(r'(?m)^id = ".*"$', f'id = "{app_id}"', manifest.read_text())
    assert replaced == 1
    manifest.write_text(text)
    return folder, app_id


async def test_pack_and_publish_with_the_cli_then_review_release_consent_and_call(
    live: AppClient, tmp_path: Path
) -> None:
    developer = await login_with_role(live, "developer")
    r = await live.post("/v1/developer/tokens", headers=developer.headers)
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    folder, app_id = library_copy(tmp_path)
    archive = tmp_path / "library.zip"

    packed = await yima_sdk("pack", str(folder), "-o", str(archive), token="")
    assert packed.code == 0, packed.err
    digest = re.search(r"^digest (sha256:[0-9a-f]{64})$", packed.out, re.M)
    assert digest is not None, packed.out

    api = str(live.base_url).rstrip("/")
    # the id is not registered yet: refused, and the CLI says what to do
    refused = await yima_sdk("publish", str(folder), "--api", api, token=token)
    assert refused.code == 1, refused.out + refused.err
    assert "error: app_id.outside_namespace: HTTP 403" in refused.err, refused.err
    operator = await login_with_role(live, "operator")
    namespace = app_id.rpartition(".")[0]
    r = await live.post(
        "/v1/admin/developer-orgs",
        json={"name": "Test Library Co.", "namespace": namespace, "members": [developer.account_id]},
        headers=operator.headers,
    )
    assert r.status_code == 201, r.text
    refused = await yima_sdk("publish", str(folder), "--api", api, token=token)
    assert "error: app_id.not_registered: HTTP 403" in refused.err, refused.err
    assert f"to do: run `yima-sdk register {folder}` to request {app_id}" in refused.err
    asked = await yima_sdk("register", str(folder), "--api", api, token=token)
    assert asked.code == 0, asked.err
    assert asked.out.startswith(f"{app_id} for Test Library Co.: requested"), asked.out
    r = await live.post(
        f"/v1/admin/app-ids/{app_id}/decision",
        json={"decision": "approve", "reason": "example.com verified"},
        headers=operator.headers,
    )
    assert r.status_code == 200, r.text
    first = await yima_sdk("publish", "--archive", str(archive), "--api", api, "--json", token=token)
    assert first.code == 0, first.out + first.err
    answer = json.loads(first.out)
    assert (answer["app_id"], answer["version"], answer["digest"]) == (app_id, "1.0.0", digest[1])
    assert answer["status"] == "in_review" and all(c["ok"] for c in answer["checks"]), answer

    # the same archive again (a CI re-run): the same answer, nothing new registered
    again = await yima_sdk("publish", "--archive", str(archive), "--api", api, "--json", token=token)
    assert again.code == 0, again.err
    assert again.out == first.out
    # the human report of a re-run, packing the folder in memory: byte-identical archive, same digest
    report = await yima_sdk("publish", str(folder), "--api", api, token=token)
    assert report.code == 0, report.err
    assert report.out.splitlines()[0] == f"{app_id} 1.0.0 {digest[1]}"
    assert "status: in_review" in report.out
    r = await live.get(f"/v1/developer/apps/{app_id}", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert len(r.json()["versions"]) == 1

    # a wrong token: refused by the server, its code printed, a failing exit status
    wrong = await yima_sdk("publish", "--archive", str(archive), "--api", api, token="ydt_" + "x" * 40)
    assert wrong.code != 0
    assert "error: registry.token_invalid: HTTP 401" in wrong.err, wrong.err
    assert token not in wrong.err + wrong.out  # the real token never echoed
    assert not wrong.out

    admin = f"/v1/admin/miniapps/{app_id}"
    r = await live.post(
        f"{admin}/versions/1.0.0/review",
        json={"decision": "approve", "reason": "privacy ok"},
        headers=operator.headers,
    )
    assert r.status_code == 200, r.text
    r = await live.post(
        f"{admin}/release", json={"version": "1.0.0", "percent": 100}, headers=operator.headers
    )
    assert r.status_code == 200, r.text

    reader = await login(live)
    id_number = valid_id_number(birth="19850607", seq=f"{secrets.randbelow(1000):03d}")
    r = await live.put(
        "/v1/me/identity", json={"name": "王小明", "id_number": id_number}, headers=reader.headers
    )
    assert r.status_code == 200, r.text
    gateway = f"/v1/miniapps/{app_id}/api"
    r = await live.get(f"{gateway}/me/name", headers=reader.headers)
    assert r.status_code == 403 and r.json()["code"] == "consent.denied"
    r = await live.put(
        f"/v1/me/consents/{app_id}/real_name_masked", json={"granted": True}, headers=reader.headers
    )
    assert r.status_code == 200, r.text
    r = await live.get(f"{gateway}/me/name", headers=reader.headers)
    assert r.status_code == 200 and r.json() == {"name": "王**"}, r.text
    r = await live.get(f"{gateway}/books", headers=reader.headers)
    assert r.status_code == 200 and {b["id"] for b in r.json()} == {"b1", "b2"}, r.text
