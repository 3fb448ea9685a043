"""Schemathesis against a real `yima serve` process, over openapi/openapi.json, with a fixed seed: no answer may be
a 5xx, and every answer must be what the document says (status, content type, body schema, headers).

The caller holds every role, so requests reach the handlers rather than stopping at the guard. Operations that
would end the caller's own session (logout, refresh) are left out: the rest of the run would only see 401s.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
from litestar import Litestar

from server.app import create_app
from server.auth.roles import Role
from server.settings import load_settings
from tests.attacks.server import yima_serve
from tests.conftest import random_phone

ST = str(Path(sys.executable).parent / "st")
SEED = 16
EXAMPLES = 8
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)
LEFT_OUT = ("logout", "refreshToken")


async def _holder_of_every_role(database_url: str, master_key: str, data_dir: Path, phone: str) -> None:
    app: Litestar = create_app(
        load_settings(
            {}, mode="test", database_url=database_url, master_key=master_key, data_dir=str(data_dir)
        )
    )
    async with app.lifespan():
        async with app.state.core.db.transaction() as conn:
            account_id = await app.state.identity.account_id_for_phone(conn, phone, create=True)
        for role in Role:
            await app.state.identity.grant_role("test", account_id, role)


def _login(url: str, phone: str) -> str:
    assert httpx.post(f"{url}/v1/auth/otp", json={"phone": phone}).status_code == 202
    code = httpx.get(f"{url}/v1/dev/sms-outbox", params={"phone": phone}).json()[-1]["code"]
    answer = httpx.post(f"{url}/v1/auth/token", json={"phone": phone, "code": code})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def test_schemathesis_finds_no_5xx_and_no_answer_outside_the_document(
    database_url: str, master_key: str, tmp_path: Path, repo_root: str
):
    phone = random_phone()
    asyncio.run(_holder_of_every_role(database_url, master_key, tmp_path, phone))
    # Long enough access tokens for the run; the OTP limits would otherwise answer the fuzzer 429 throughout.
    with yima_serve(
        database_url,
        master_key,
        tmp_path,
        YIMA_ACCESS_TOKEN_TTL_S="3600",
        YIMA_OTP_PER_ADDRESS_PER_HOUR="100000",
    ) as (url, _):
        token = _login(url, phone)
        command = [
            ST,
            "run",
            str(Path(repo_root) / "openapi" / "openapi.json"),
            "--url",
            url,
            "--seed",
            str(SEED),
            "--max-examples",
            str(EXAMPLES),
            "--checks",
            CHECKS,
            "--phases",
            "examples,coverage,fuzzing",
            "--header",
            f"Authorization: Bearer {token}",
            "--request-timeout",
            "30",
            "--no-color",
            "--output-truncate",
            "true",
            *[arg for op in LEFT_OUT for arg in ("--exclude-operation-id", op)],
        ]
        run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-4000:]
