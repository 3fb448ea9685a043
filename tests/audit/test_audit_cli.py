"""`yima audit verify` on a database of its own: intact chain, then a changed, a deleted and a reordered record,
tampered with through a superuser connection (the application role cannot do it at all); then the newest records
deleted and a record rewritten with its plain hashes recomputed, both caught against signed checkpoints."""

from __future__ import annotations

import asyncio
import os
import secrets

import asyncpg
import pytest

from server import audit
from server.cli import main
from server.core import migrate
from server.security import DerivedKeys, load_master_key
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
        audit.use_chain_key(
            DerivedKeys.derive(
                load_master_key(load_settings({}, mode="test", master_key=master_key))
            ).audit_chain
        )
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


@pytest.fixture(autouse=True)
def _cli_env(monkeypatch, master_key, tmp_path):
    """What an operator's shell holds: the master key (the chain's MAC key derives from it), its own data folder."""
    monkeypatch.setenv("YIMA_MODE", "test")
    monkeypatch.setenv("YIMA_MASTER_KEY", master_key)
    monkeypatch.setenv("YIMA_DATA_DIR", str(tmp_path / "data"))


def _verify(url: str, capsys, *extra: str) -> tuple[int, str]:
    code = main(["audit", "verify", "--database-url", url, *extra])
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


def _checkpoint(url: str, capsys) -> str:
    """`yima audit checkpoint`, as the schedule or an operator runs it; returns what it printed."""
    code = main(["audit", "checkpoint", "--database-url", url])
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def _rewrite_with_plain_hashes(url: str, seq: int, details: dict) -> None:
    """What passed verification before the chain was keyed: change a record, recompute every hash after it."""
    from server.audit.service import GENESIS, MAC_PLAIN, _digest

    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            import json

            await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
            await conn.execute("SET session_replication_role = replica")
            rows = await conn.fetch("SELECT * FROM audit_log ORDER BY seq")
            prev = GENESIS if seq == 1 else bytes(rows[seq - 2]["hash"])
            for row in rows[seq - 1 :]:
                changed = details if row["seq"] == seq else row["details"]
                digest = _digest(
                    b"",
                    MAC_PLAIN,
                    row["seq"],
                    row["at"],
                    row["actor"],
                    row["action"],
                    row["target"],
                    changed,
                    prev,
                )
                await conn.execute(
                    "UPDATE audit_log SET details = $2, prev_hash = $3, hash = $4 WHERE seq = $1",
                    row["seq"],
                    changed,
                    prev,
                    digest,
                )
                prev = digest
        finally:
            await conn.close()

    asyncio.run(run())


def test_deleting_the_newest_records_is_caught_by_a_checkpoint_kept_outside(audit_db, capsys, tmp_path):
    out = _checkpoint(audit_db, capsys)
    size = int(out.split("checkpoint: ", 1)[1].split(" ", 1)[0])
    exported = tmp_path / "data" / "audit-checkpoints.jsonl"
    kept = tmp_path / "partner-copy.jsonl"  # what a partner fetched from GET /v1/audit/checkpoints
    kept.write_bytes(exported.read_bytes())
    assert _verify(audit_db, capsys)[0] == 0
    # Someone with the database's superuser deletes the two newest records, and the checkpoints it holds.
    _superuser(audit_db, f"DELETE FROM audit_log WHERE seq > {size - 2}", "DELETE FROM audit_checkpoints")
    code, text = _verify(audit_db, capsys, "--checkpoints", str(kept))
    assert code == 1
    assert f"record {size - 1}: truncated" in text
    assert f"covers {size} record(s); the log holds {size - 2}" in text


def test_a_record_rewritten_with_recomputed_plain_hashes_is_named(audit_db, capsys):
    _rewrite_with_plain_hashes(audit_db, 3, {"n": 99})
    code, text = _verify(audit_db, capsys)
    assert code == 1 and "record 3: changed" in text


def test_a_rewrite_that_also_forges_the_format_is_caught_by_the_checkpoint(audit_db, capsys):
    _checkpoint(audit_db, capsys)
    # Mark every record as written before the chain was keyed, and recompute plain hashes from the first on.
    _superuser(audit_db, "UPDATE audit_log SET mac = 1")
    _rewrite_with_plain_hashes(audit_db, 1, {"n": 99})
    code, text = _verify(audit_db, capsys)
    assert code == 1 and "rewritten (differs from the checkpoint signed at" in text


def test_a_forged_checkpoint_is_refused(audit_db, capsys, tmp_path):
    _checkpoint(audit_db, capsys)
    exported = (tmp_path / "data" / "audit-checkpoints.jsonl").read_text()
    forged = tmp_path / "forged.jsonl"
    forged.write_text(exported.replace('"size":', '"size":1', 1))
    code, text = _verify(audit_db, capsys, "--checkpoints", str(forged))
    assert code == 1 and "the signature is not valid" in text
