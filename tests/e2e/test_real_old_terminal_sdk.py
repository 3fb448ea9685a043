"""A terminal on the SDK from before `app_pass` revocations (9dd2365^) keeps syncing revocations from a real
`yima dev`, while today's SDK and its files get every kind.

The old SDK's own code is the reference: its `trust.py` (which refused a whole delta holding a kind it did not
know) and its `_transport.py` (the request it sends: `?issuer=I&since=N`, no `kinds`) are taken from git at
9dd2365^ and run as they were. Asked so, the server sends only the first SDK's kinds (subject, device
certificate), and the old terminal keeps learning lost phones; today's SDK names its kinds and gets the cancelled
ticket too, and a file whose lists were fetched without `kinds` is fetched whole again once (docs/scan.md,
Revocation)."""

from __future__ import annotations

import base64
import importlib.util
import secrets
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from yima_sdk.terminal import HttpTransport, Terminal, TerminalCredentials

from tests.credentials.helpers import public_key_b64
from tests.e2e._real import (
    RealServer,
    eventually,
    fresh_database,
    private_folder,
    real_server,
    release_app,
    server_env,
    sign_in,
    verified_resident,
)

OLD_SDK = "9dd2365^"
"""The last commit before `app_pass` revocation entries."""
OURS = 341822

MANIFEST = """
id = "{app_id}"
name = "Gate tickets"
version = "1.0.0"
entry = "app:app"
capabilities = ["user", "credentials", "log"]
scenes = ["scenic"]
"""
SOURCE = '''
"""Tickets as passes, and their cancellation."""

import time

from yima_sdk import App, Context, Request

app = App()


@app.post("/tickets")
async def buy(ctx: Context, request: Request) -> dict:
    issued = await ctx.credentials.issue_pass("ticket", {"gate": "east"}, int(time.time()) + 3600)
    return {"id": issued.id, "payload": issued.payload}


@app.post("/tickets/{pass_id}/cancel")
async def cancel(ctx: Context, request: Request) -> dict:
    return {"revoked": await ctx.credentials.revoke_pass(request.path_params["pass_id"])}
'''


def old_sdk_module(folder: Path, path: str, name: str) -> ModuleType:
    """`path` of the SDK as it was at OLD_SDK, loaded as module `name` (its imports resolve to today's SDK)."""
    source = subprocess.run(
        ["git", "show", f"{OLD_SDK}:{path}"],
        cwd=Path(__file__).parent,
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    file = folder / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # msgspec reads the module's annotations through it
    spec.loader.exec_module(module)
    return module


class World:
    def __init__(self, server: RealServer, folder: Path) -> None:
        self.server = server
        self.folder = folder
        self.operator = sign_in(server, role="operator")
        self.app_id = f"test.o{secrets.token_hex(4)}.tickets"
        app = folder / "tickets"
        app.mkdir()
        (app / "miniapp.toml").write_text(MANIFEST.replace("{app_id}", self.app_id))
        (app / "app.py").write_text(SOURCE)
        release_app(server, app, sign_in(server, role="developer"), self.operator)
        self.scene = f"gate-{secrets.token_hex(3)}"
        r = self.operator.put(f"/v1/admin/miniapps/scenes/scenic/{self.scene}", json={"app_id": self.app_id})
        assert r.status_code == 200, r.text
        self.visitor = verified_resident(server)

    def ticket(self) -> dict[str, str]:
        r = self.visitor.post(f"/v1/miniapps/{self.app_id}/api/tickets")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def cancel(self, ticket: dict[str, str]) -> None:
        r = self.visitor.post(f"/v1/miniapps/{self.app_id}/api/tickets/{ticket['id']}/cancel")
        assert r.status_code == 200 and r.json() == {"revoked": True}, r.text

    def lose_phone(self) -> None:
        assert verified_resident(self.server).post("/v1/me/codes/ankang/revoke").status_code == 200

    def gate(self) -> TerminalCredentials:
        """A scenic gate the operator registers: its id and its own key."""
        key = Ed25519PrivateKey.generate()
        body = {"name": "east gate", "kind": "scenic", "scene": self.scene, "public_key": public_key_b64(key)}
        r = self.operator.post("/v1/admin/terminals", json=body)
        assert r.status_code == 201, r.text
        return TerminalCredentials(r.json()["id"], key)

    def full_list(self) -> httpx.Response:
        """Our issuer's whole list, every kind: what every terminal was sent before `kinds`."""
        kinds = "subject,device_certificate,app_pass"
        r = self.operator.get("/v1/revocations", params={"since": 0, "kinds": kinds})
        assert r.status_code == 200, r.text
        return r

    def new_sdk_gate(self, db: Path, transport: HttpTransport) -> Terminal:
        info = httpx.get(f"{self.server.url}/v1/trust-list/info").json()
        roots = {kid: base64.urlsafe_b64decode(k + "==") for kid, k in info["root_public_keys"].items()}
        return Terminal(
            root_public_keys=roots, db_path=str(db), clock=time.time, clock_source="ntp", transport=transport
        )


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with private_folder("yima-old-sdk-") as folder, fresh_database() as database_url:
        with real_server("dev", env=server_env(database_url, folder / "data", redis=False)) as server:
            yield World(server, folder)


def test_a_gate_on_the_old_sdk_keeps_learning_lost_phones_past_cancelled_tickets(world: World) -> None:
    old_trust = old_sdk_module(world.folder, "sdk/yima_sdk/trust.py", "old_trust")
    old_transport = old_sdk_module(world.folder, "sdk/yima_sdk/terminal/_transport.py", "old_transport")
    gate = old_transport.HttpTransport(world.server.url, world.gate())

    world.lose_phone()
    world.cancel(eventually(world.ticket))  # the app's workers may still be starting
    world.lose_phone()  # published after the cancelled ticket's entry
    whole = world.full_list()
    every = whole.json()
    kinds = [e["kind"] for e in every["entries"]]
    assert "app_pass" in kinds and kinds[-1] == "subject", kinds

    # What the server sent before `kinds`: the whole list, which the old SDK refuses as a whole ...
    with pytest.raises(old_trust.RevocationError) as refused:
        old_trust.RevocationSet().apply_response(whole.content)
    assert refused.value.code == "revocation.malformed"

    # ... and what it is sent now, asking as it always did: the kinds it knows, up to the list's version.
    held = old_trust.RevocationSet()
    delta = held.apply_response(gate.fetch_revocations(OURS, 0))
    assert delta.version == every["version"]
    subjects = {e["ref"] for e in every["entries"] if e["kind"] == "subject"}
    assert len(subjects) >= 2
    assert {base64.urlsafe_b64encode(ref).rstrip(b"=").decode() for _, ref in held.entries(OURS)} == subjects

    # later deltas too: another cancelled ticket, then another lost phone, past the version it holds
    world.cancel(world.ticket())
    world.lose_phone()
    delta = held.apply_response(gate.fetch_revocations(OURS, held.version(OURS)))
    assert delta.version == world.full_list().json()["version"]
    assert [e.kind for e in delta.entries] and {e.kind for e in delta.entries} == {"subject"}
    assert len(held.entries(OURS)) > len(subjects)

    # the answer says which kinds it holds; asked for none, the first SDK's
    assert world.full_list().headers["yima-revocation-kinds"] == "app_pass,device_certificate,subject"
    r = world.operator.get("/v1/revocations", params={"since": 0})
    assert r.headers["yima-revocation-kinds"] == "device_certificate,subject"
    assert {e["kind"] for e in r.json()["entries"]} == {"subject"}
    for bad in ("APP_PASS", "subject,", "", "subject;app_pass"):
        r = world.operator.get("/v1/revocations", params={"since": 0, "kinds": bad})
        assert r.status_code == 400 and r.json()["code"] == "request.invalid", (bad, r.text)


def test_the_new_sdk_refuses_a_cancelled_ticket_even_on_a_file_synced_the_old_way(world: World) -> None:
    cancelled = world.ticket()
    world.cancel(cancelled)
    world.lose_phone()
    credentials = world.gate()
    db = world.folder / f"gate-{secrets.token_hex(4)}.sqlite"

    # Today's SDK names its kinds: the cancelled ticket is refused offline.
    gate = world.new_sdk_gate(db, HttpTransport(world.server.url, credentials))
    gate.refresh()
    decision = gate.scan(cancelled["payload"])
    assert (decision.result, decision.reason) == ("reject", "credential.revoked"), decision
    gate.close()

    # The same file as a terminal that synced without `kinds` left it: lists without the ticket, at the latest
    # version, and no note of the kinds they were fetched with. Its first sync on today's SDK fetches them whole.
    with closing(sqlite3.connect(db)) as file, file:
        file.execute("DELETE FROM revocation WHERE kind = 'app_pass'")
        file.execute("DELETE FROM terminal_state WHERE key = 'revocation_kinds'")
    gate = world.new_sdk_gate(db, HttpTransport(world.server.url, credentials))
    assert not gate.revocations.pass_revoked(OURS, int(cancelled["id"].removeprefix("pass_")))
    gate.refresh()
    assert gate.revocations.pass_revoked(OURS, int(cancelled["id"].removeprefix("pass_")))
    decision = gate.scan(cancelled["payload"])
    assert (decision.result, decision.reason) == ("reject", "credential.revoked"), decision
    gate.close()
