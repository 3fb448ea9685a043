"""Through a real `yima dev`: a mini-app call whose client hangs up while it waits for one of the app's workers
leaves the queue at once and never runs, and the callers after it are served.

Every call the app runs leaves a key in its storage. Two calls hold both of its workers until the test grants
their caller a staff role (the app reads the role again every 50 ms); the test knows they run from the app's log
lines on the server's output. Five calls then queue from clients that hang up."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx

from server.seed import DEMO_OPERATOR_PHONE
from tests.e2e._real import RealServer, private_folder, real_server, server_env, sign_in
from tests.platform.conftest import new_app_id

APP = """
import asyncio

from yima_sdk import App, Context, Request

app = App()


@app.post("/hold")
async def hold(ctx: Context, request: Request) -> dict:
    await ctx.storage.put("ran:" + request.query["tag"], True)
    await ctx.log.info("holding", tag=request.query["tag"])
    while not (await ctx.user.staff()).has("gatekeeper"):
        await asyncio.sleep(0.05)
    return {"held": request.query["tag"]}


@app.post("/note")
async def note(ctx: Context, request: Request) -> dict:
    await ctx.storage.put("ran:" + request.query["tag"], True)
    return {"ran": request.query["tag"]}


@app.get("/ran")
async def ran(ctx: Context, request: Request) -> dict:
    page = await ctx.storage.list(prefix="ran:", limit=100)
    return {"tags": sorted(doc.key.removeprefix("ran:") for doc in page.items)}
"""

MANIFEST = """
id = "{app_id}"
name = "Hang-up probe"
version = "1.0.0"
entry = "app:app"
capabilities = ["user", "storage", "log"]

[limits]
workers = 2
timeout_ms = 10000

[staff.roles]
gatekeeper = "Ends the held calls"
"""

DOOMED = 5
"""Calls queued by clients that hang up; also the calls each resident may make per minute (the test's window on
which calls the server has read)."""


def _app_folder(root: Path, app_id: str) -> Path:
    folder = root / "src" / app_id
    folder.mkdir(parents=True)
    (folder / "miniapp.toml").write_text(MANIFEST.replace("{app_id}", app_id))
    (folder / "app.py").write_text(APP)
    return folder


def _access_lines(server: RealServer, status: int) -> list[dict[str, object]]:
    """The server's access-log records (one per answered request) with this status."""
    found = []
    for line in server.output().splitlines():
        if line.startswith("{") and '"request"' in line:
            record = json.loads(line)
            if record.get("msg") == "request" and record.get("status") == status:
                found.append(record)
    return found


async def _until(condition: Callable[[], bool], what: str, limit_s: float = 30.0) -> None:
    """Poll `condition()`, boundedly: the server's output and the sockets are the test's window on the server."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not condition():
        assert loop.time() < deadline, what
        await asyncio.sleep(0.05)


async def _hang_up_while_queued(server: RealServer, app_id: str, tokens: dict[str, str]) -> None:
    api = f"/v1/miniapps/{app_id}/api"
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:

        def auth(who: str) -> dict[str, str]:
            return {"authorization": f"Bearer {tokens[who]}"}

        holds = [
            asyncio.ensure_future(
                client.post(f"{api}/hold", params={"tag": f"held {n}"}, headers=auth("holder"))
            )
            for n in range(2)
        ]
        await _until(
            lambda: server.output().count('"holding"') >= 2 or any(h.done() for h in holds),
            "the two held calls never ran",
        )
        assert not any(h.done() for h in holds), [h.result().text for h in holds if h.done()]

        # Calls from clients that will hang up, one connection each: both workers are held, so they queue. Three
        # more than the resident may make this minute are refused at the gateway, before the queue: once three
        # answers came, the other five have passed that step (the server has read them) and wait for a worker.
        host, port = server.url.removeprefix("http://").split(":")
        doomed = []
        for n in range(DOOMED + 3):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                (
                    f"POST {api}/note?tag=doomed%20{n} HTTP/1.1\r\nhost: {host}\r\n"
                    f"authorization: Bearer {tokens['doomed']}\r\ncontent-length: 0\r\n\r\n"
                ).encode()
            )
            await writer.drain()
            doomed.append((asyncio.ensure_future(reader.read(65536)), writer))
        answers = [answer for answer, _ in doomed]
        await _until(lambda: sum(a.done() for a in answers) >= 3, "no call was refused over the quota")
        assert [a.result()[:12] for a in answers if a.done()] == [b"HTTP/1.1 429"] * 3
        queued = [(answer, writer) for answer, writer in doomed if not answer.done()]
        assert len(queued) == DOOMED
        for answer, writer in queued:
            writer.close()
            answer.cancel()
        # Answered 499 (to nobody) while both workers are still held: they left the queue without running.
        await _until(
            lambda: len(_access_lines(server, 499)) >= DOOMED, "the doomed calls stayed in the queue"
        )
        assert not any(h.done() for h in holds)

        later = asyncio.ensure_future(
            client.post(f"{api}/note", params={"tag": "later"}, headers=auth("later"))
        )
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as operator:
            r = await operator.post(
                f"/v1/miniapps/{app_id}/staff/",
                json={"account_id": int(tokens["holder id"]), "role": "gatekeeper"},
                headers=auth("operator"),
            )
            assert r.status_code == 201, r.text
        assert [(await h).status_code for h in holds] == [200, 200]
        assert (await later).status_code == 200
        r = await client.get(f"{api}/ran", headers=auth("later"))
        assert r.status_code == 200, r.text
        assert r.json()["tags"] == ["held 0", "held 1", "later"]  # no call of a client that hung up ran


def test_calls_whose_clients_hang_up_while_queued_never_run_and_later_callers_are_served() -> None:
    with private_folder() as folder:
        app_id = new_app_id("hangup")
        source = _app_folder(folder, app_id)
        env = server_env("", folder / "data", redis=False, YIMA_LOG_LEVEL="INFO")
        with real_server("dev", "--app", str(source), env=env) as server:
            operator = sign_in(server, DEMO_OPERATOR_PHONE)
            r = operator.put(
                f"/v1/admin/miniapps/{app_id}/quotas",
                json={"calls_per_minute": 10_000, "resident_calls_per_minute": DOOMED},
            )
            assert r.status_code == 200, r.text
            residents = {who: sign_in(server) for who in ("holder", "doomed", "later")}
            tokens = {
                who: str(c.headers["authorization"]).removeprefix("Bearer ") for who, c in residents.items()
            }
            tokens["operator"] = str(operator.headers["authorization"]).removeprefix("Bearer ")
            tokens["holder id"] = str(residents["holder"].get("/v1/me").json()["id"])
            asyncio.run(_hang_up_while_queued(server, app_id, tokens))
