"""`yima audit verify` on a database of its own: intact chain, then a changed, a deleted and a reordered record,
tampered with through a superuser connection (the application role cannot do it at all)."""

from __future__ import annotations

import asyncio
import os
import secrets

import asyncpg
import pytest

from server import audit
from server.cli import main
from server.core import migrate
from server.settings import load_settings
from tests.conftest import ADMIN_DSN, _dsn_for


@pytest.fixture
def audit_db(master_key):
    name = f"yima_audit_{os.getpid()}_{secrets.token_hex(3)}"

    async def setup() -> str:
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        url = _dsn_for(name)
        await migrate(load_settings({}, mode="test", database_url=url, master_key=master_key))
        conn = await asyncpg.connect(url)
        import json

        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        for i in range(5):
            async with conn.transaction():
                await audit.append(
                    conn, actor="test", action="thing.done", target=f"thing:{i}", details={"n": i}
                )
        await conn.close()
        return url

    url = asyncio.run(setup())
    yield url

    async def drop() -> None:
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    asyncio.run(drop())


def _superuser(url: str, *statements: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            # The append-only trigger stops even superusers; replica mode skips triggers for this session only.
            await conn.execute("SET session_replication_role = replica")
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


def _verify(url: str, capsys) -> tuple[int, str]:
    code = main(["audit", "verify", "--database-url", url])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_intact_chain_verifies(audit_db, capsys):
    code, text = _verify(audit_db, capsys)
    assert code == 0 and "5 record(s) verified" in text


def test_changed_record_is_named(audit_db, capsys):
    _superuser(audit_db, """UPDATE audit_log SET details = '{"n": 99}' WHERE seq = 3""")
    code, text = _verify(audit_db, capsys)
    assert code == 1 and "record 3: changed" in text


def test_deleted_record_is_named(audit_db, capsys):
    _superuser(audit_db, "DELETE FROM audit_log WHERE seq = 2")
    code, text = _verify(audit_db, capsys)
    assert code == 1 and "record 2: missing" in text


def test_reordered_records_are_named(audit_db, capsys):
    # Swap records 2 and 4 wholesale (every column but seq), as someone rewriting history in place would.
    _superuser(
        audit_db,
        """UPDATE audit_log a SET at = b.at, actor = b.actor, action = b.action, target = b.target,
               details = b.details, prev_hash = b.prev_hash, hash = b.hash
           FROM (SELECT * FROM audit_log) b
           WHERE (a.seq, b.seq) IN ((2, 4), (4, 2))""",
    )
    code, text = _verify(audit_db, capsys)
    assert code == 1 and "record 2: reordered" in text


def test_application_role_cannot_update_or_delete_audit_rows(audit_db):
    async def run() -> list[type[BaseException]]:
        conn = await asyncpg.connect(audit_db)
        failures = []
        try:
            await conn.execute("SET ROLE yima_app")
            for statement in (
                "UPDATE audit_log SET actor = 'x' WHERE seq = 1",
                "DELETE FROM audit_log WHERE seq = 1",
                "TRUNCATE audit_log",
            ):
                try:
                    await conn.execute(statement)
                except asyncpg.PostgresError as exc:
                    failures.append(type(exc))
        finally:
            await conn.close()
        return failures

    assert asyncio.run(run()) == [asyncpg.InsufficientPrivilegeError] * 3
