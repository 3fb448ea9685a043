"""`yima terminal scan --offline` and `yima terminal upload` against a real `yima dev`: the demo clinic terminal
decides with the terminal SDK on the lists it synced, and keeps working when the server's revocation list carries
a kind this SDK does not know (the server leaves it out: the SDK names its kinds), still refusing the codes the
known entries revoke. Also: the
root keys are the operator's to give (never fetched from whoever answers the URL), pinned in a key file rewritten
whole and private; a server that cannot be reached is said in one line with an exit status, never a traceback."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from yima_sdk.trust import TrustList

from tests.conftest import free_port
from tests.e2e._real import (
    YIMA,
    eventually,
    fresh_database,
    private_folder,
    real_server,
    release_app,
    server_env,
    sign_in,
    verified_resident,
)

FUTURE_REF = bytes([7]) * 12
"""The reference of the newer kind's entry: whatever it means, no terminal may print it."""


def cli(server: Any, *argv: str) -> subprocess.CompletedProcess[str]:
    data = server.env["YIMA_DATA_DIR"]
    return subprocess.run(
        [YIMA, "terminal", *argv[:1], "--data-dir", data, "--url", server.url, *argv[1:]],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def scan_offline(server: Any, payload: str) -> tuple[dict[str, Any], str]:
    done = cli(server, "scan", "--offline", payload)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout), done.stderr


def code_of(resident: httpx.Client) -> str:
    r = resident.get("/v1/me/codes/ankang")
    assert r.status_code == 200, r.text
    return str(r.json()["payload"])


async def publish_a_newer_kind(database_url: str) -> None:
    """What a newer server would publish: an entry of a kind this SDK does not know, on our issuer's list between
    known entries (the newer server's migration widens the kind check; this test does it by hand)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check")
        await conn.execute(
            """INSERT INTO revocations (issuer, version, kind, ref, revoked_at, expires_at, reason)
               SELECT 341822, coalesce(max(version), 0) + 1, 'door_plate_v2', $1, now(), now() + interval '1 day',
                      'a newer kind' FROM revocations WHERE issuer = 341822""",
            FUTURE_REF,
        )
    finally:
        await conn.close()


def test_the_cli_terminal_applies_a_newer_servers_revocation_list_and_refuses_what_it_knows() -> None:
    with private_folder() as folder, fresh_database() as database_url:
        with real_server("dev", env=server_env(database_url, folder / "data", redis=False)) as server:
            lost, stolen, holder = (verified_resident(server) for _ in range(3))
            lost_code, stolen_code = code_of(lost), code_of(stolen)
            answer, _ = scan_offline(server, code_of(holder))  # synced before anything was revoked
            assert (answer["result"], answer["mode"], answer["pending"]) == ("accept", "offline", 1), answer

            assert lost.post("/v1/me/codes/ankang/revoke").status_code == 200
            asyncio.run(publish_a_newer_kind(database_url))
            assert stolen.post("/v1/me/codes/ankang/revoke").status_code == 200

            answer, warned = scan_offline(server, lost_code)
            assert (answer["result"], answer["reason"]) == ("reject", "credential.revoked"), answer
            # the SDK names the kinds it knows, so the server left the newer one out, and said so in its log
            assert "revocation_kinds_skipped" not in answer and "door_plate_v2" not in warned, answer
            logged = server.output()
            assert "left out door_plate_v2 x1" in logged, logged[-3000:]  # by kind and count ...
            assert FUTURE_REF.hex() not in logged and "BwcH" not in logged  # ... never by reference
            answer, _ = scan_offline(server, stolen_code)  # revoked after the newer entry
            assert (answer["result"], answer["reason"]) == ("reject", "credential.revoked"), answer
            answer, _ = scan_offline(server, code_of(holder))
            assert (answer["result"], answer["pending"]) == ("accept", 4), answer

            done = cli(server, "upload")
            assert done.returncode == 0 and json.loads(done.stdout) == {"uploaded": 4}, (
                done.stdout + done.stderr
            )


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def yima(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [YIMA, "terminal", *argv], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def a_key_file(path: Path, **extra: Any) -> Path:
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    path.write_text(json.dumps({"terminal_id": "t-nowhere", "private_key": b64(raw), **extra}))
    return path


def a_root() -> str:
    return b64(Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def refused(done: subprocess.CompletedProcess[str], status: int, *said: str) -> None:
    """The command stopped with `status` and said why in `yima: ...` lines: no traceback, nothing on stdout."""
    assert done.returncode == status, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stdout == "", done.stdout + done.stderr
    assert done.stderr.startswith("yima: ") or done.stderr.startswith("usage: "), done.stderr
    for words in said:
        assert words in done.stderr, done.stderr


def test_without_a_server_or_root_keys_the_cli_says_why_and_exits_nonzero() -> None:
    with private_folder() as folder:
        env = server_env("", folder / "data", redis=False)
        nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        pinned = a_key_file(folder / "pinned.json", root_public_keys={"root-1": a_root()})
        unpinned = a_key_file(folder / "unpinned.json")
        code = "YA:" + "0" * 130

        # the first offline scan needs the server once: it cannot sync, so it holds nothing to decide with
        done = yima(env, "scan", "--offline", code, "--key-file", str(pinned), "--url", nowhere)
        refused(done, 1, "could not sync", "holds no trust list yet")
        refused(yima(env, "scan", code, "--key-file", str(pinned), "--url", nowhere), 1, nowhere)
        # root keys come from the key file or the operator, never from whoever answers the URL
        done = yima(env, "scan", "--offline", code, "--key-file", str(unpinned), "--url", nowhere)
        refused(done, 2, "pins no trust-list root keys", "--root-key")
        done = yima(env, "scan", "--offline", code, "--key-file", str(unpinned), "--root-key", "root-1")
        refused(done, 2, "KID=KEY")
        refused(yima(env, "scan", code, "--key-file", str(pinned), "--url", "ftp://x"), 2, "--url ftp://x")
        refused(
            yima(env, "scan", code, "--key-file", str(folder / "none.json")), 2, "no usable terminal key file"
        )

        # upload needs no root keys; with nothing kept it sends nothing (and so reaches for no server)
        done = yima(env, "upload", "--key-file", str(unpinned), "--url", nowhere)
        assert done.returncode == 0 and json.loads(done.stdout) == {"uploaded": 0}, done.stdout + done.stderr
        assert json.loads(unpinned.read_text()).get("root_public_keys") is None


def test_the_operator_gives_the_root_keys_and_the_key_file_pins_them_privately() -> None:
    with private_folder() as folder, fresh_database() as database_url:
        with real_server("dev", env=server_env(database_url, folder / "data", redis=False)) as server:
            demo = json.loads((folder / "data" / "demo-clinic-terminal.json").read_text())
            roots = demo.pop("root_public_keys")
            assert roots, demo
            key_file = folder / "gate.json"
            key_file.write_text(json.dumps(demo))
            key_file.chmod(0o644)
            payload = code_of(verified_resident(server))
            scan = ("scan", "--offline", payload, "--key-file", str(key_file), "--url", server.url)

            # the server would name its roots, but who answers a URL is not who signs the trust list
            refused(yima(server.env, *scan), 2, "--root-key")
            stranger = f"{next(iter(roots))}={a_root()}"
            refused(yima(server.env, *scan, "--root-key", stranger), 1, "the sync was refused")
            assert json.loads(key_file.read_text()) == demo  # nothing pinned that signed nothing

            given = [arg for kid, key in roots.items() for arg in ("--root-key", f"{kid}={key}")]
            done = yima(server.env, *scan, *given)
            assert done.returncode == 0, done.stdout + done.stderr
            assert json.loads(done.stdout)["result"] == "accept", done.stdout
            assert "pinned trust-list root key" in done.stderr and "sha256:" in done.stderr, done.stderr
            assert json.loads(key_file.read_text()) == demo | {"root_public_keys": roots}
            assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600  # it holds the private key
            assert [
                p.name for p in folder.iterdir() if p.name.startswith(".gate.json")
            ] == []  # no temporary left

            done = yima(server.env, *scan)  # pinned: no flag needed any more
            assert done.returncode == 0 and json.loads(done.stdout)["pending"] == 2, done.stdout + done.stderr
            refused(yima(server.env, *scan, "--root-key", stranger), 2, "differs from the root keys")

            done = yima(server.env, "upload", "--key-file", str(key_file), "--url", server.url)
            assert done.returncode == 0 and json.loads(done.stdout) == {"uploaded": 2}, (
                done.stdout + done.stderr
            )


TICKETS_MANIFEST = """
id = "test.cli.tickets"
name = "Gate tickets"
version = "1.0.0"
entry = "app:app"
capabilities = ["user", "credentials"]
scenes = ["scenic"]
"""
TICKETS_SOURCE = '''
"""Tickets as passes."""

import time

from yima_sdk import App, Context, Request

app = App()


@app.post("/tickets")
async def buy(ctx: Context, request: Request) -> dict:
    issued = await ctx.credentials.issue_pass("ticket", {"gate": "east"}, int(time.time()) + 3600)
    return {"payload": issued.payload}
'''
LANGXI = 341821


async def a_stray_partner_pass_key(database_url: str) -> None:
    """A partner county's row holding `app_pass`, as one written by hand would (around migration 0350's check)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "ALTER TABLE partner_issuer_keys DROP CONSTRAINT IF EXISTS partner_issuer_keys_no_app_pass"
        )
        await conn.execute(
            """INSERT INTO partner_issuer_keys (issuer, key_id, alg, public_key, credential_types, not_before,
                   not_after, added_at, added_by)
               VALUES ($1, $2, 1, $3, '{app_pass}', now() - interval '1 day', now() + interval '1 day', now(), 'hand')""",
            LANGXI,
            bytes.fromhex("0badf00d"),
            Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
        )
    finally:
        await conn.close()


def test_a_partner_row_holding_app_pass_is_not_published_and_tickets_pass_offline() -> None:
    """A partner row with `app_pass` made the list name two issuers with pass keys, and terminals that take the one
    pass issuer on the list then admitted no pass: the list leaves it out, and the key file names our issuer."""
    with private_folder() as folder, fresh_database() as database_url:
        with real_server("dev", env=server_env(database_url, folder / "data", redis=False)) as server:
            operator = sign_in(server, role="operator")
            app = folder / "tickets"
            app.mkdir()
            (app / "miniapp.toml").write_text(TICKETS_MANIFEST)
            (app / "app.py").write_text(TICKETS_SOURCE)
            release_app(server, app, sign_in(server, role="developer"), operator)
            visitor = verified_resident(server)

            def bought() -> str:
                r = visitor.post("/v1/miniapps/test.cli.tickets/api/tickets")
                assert r.status_code == 200, r.text
                return str(r.json()["payload"])

            ticket = eventually(bought)  # the app's workers may still be starting
            asyncio.run(a_stray_partner_pass_key(database_url))
            partner = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            r = operator.post(  # publishes the list again, with every partner row
                "/v1/admin/trust-list/partner-keys",
                json={
                    "issuer": LANGXI,
                    "key_id": "00c0ffee",
                    "public_key": b64(partner),
                    "not_before": "2026-01-01T00:00:00Z",
                    "not_after": "2036-01-01T00:00:00Z",
                },
            )
            assert r.status_code == 201, r.text
            answer, _ = scan_offline(server, ticket)
            assert (answer["result"], answer["credential_type"]) == ("accept", "app_pass"), answer
            assert answer["pass"]["app_id"] == "test.cli.tickets", answer

            demo = json.loads((folder / "data" / "demo-clinic-terminal.json").read_text())
            assert demo["pass_issuer"] == 341822
            roots = {
                kid: base64.urlsafe_b64decode(key + "=") for kid, key in demo["root_public_keys"].items()
            }
            listed = TrustList.verify(httpx.get(server.url + "/v1/trust-list").content, roots)
            assert listed.entry(LANGXI, bytes.fromhex("0badf00d")) is None
            assert {e.issuer for e in listed.entries if "app_pass" in e.credential_types} == {341822}
