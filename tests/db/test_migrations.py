"""Forward-only migrations: applied once, in order, recorded with checksums; a changed file stops start-up."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

import asyncpg
import pytest

from server.db.migrate import Migration, MigrationError, apply_migrations, migration_files
from server.terminals.scans import outbox_repository
from tests.conftest import ADMIN_DSN, _dsn_for


@pytest.fixture
async def scratch_db():
    name = f"yima_m_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(_dsn_for(name))
    yield conn
    await conn.close()
    await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.close()


async def test_files_are_numbered_and_unique():
    files = migration_files()
    assert files and [m.version for m in files] == sorted({m.version for m in files})


async def test_apply_once_then_nothing(scratch_db):
    first = await apply_migrations(scratch_db)
    assert first == [m.name for m in migration_files()]
    assert await apply_migrations(scratch_db) == []
    rows = await scratch_db.fetch("SELECT version, checksum FROM schema_migrations ORDER BY version")
    assert [(r["version"], r["checksum"]) for r in rows] == [
        (m.version, m.checksum) for m in migration_files()
    ]


async def test_changed_applied_migration_refuses(scratch_db):
    files = [Migration(1, "0001_a.sql", "CREATE TABLE a (x int);")]
    await apply_migrations(scratch_db, files)
    changed = [Migration(1, "0001_a.sql", "CREATE TABLE a (x bigint);")]
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await apply_migrations(scratch_db, changed)


async def test_failed_migration_leaves_nothing_half_applied(scratch_db):
    files = [
        Migration(1, "0001_a.sql", "CREATE TABLE a (x int);"),
        Migration(2, "0002_b.sql", "CREATE TABLE b (x int); SELECT no_such_function();"),
    ]
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await apply_migrations(scratch_db, files)
    assert await scratch_db.fetchval("SELECT to_regclass('b')") is None
    assert await scratch_db.fetchval("SELECT max(version) FROM schema_migrations") == 1


async def test_unknown_applied_migration_refuses(scratch_db):
    await apply_migrations(scratch_db, [Migration(7, "0007_x.sql", "SELECT 1;")])
    with pytest.raises(MigrationError, match="does not know"):
        await apply_migrations(scratch_db, [])


async def test_app_ids_taken_before_registrations_stay_with_their_apps(scratch_db):
    """0091: an app uploaded before registrations keeps its id; a county id someone took waits for an operator."""
    before = [m for m in migration_files() if m.version < 91]
    await apply_migrations(scratch_db, before)
    dev = await scratch_db.fetchval(
        "INSERT INTO accounts (phone_index, phone_enc) VALUES ('\\x01', '\\x02') RETURNING id"
    )
    for app_id in ("com.example.clinic", "gov.guangde.medical"):
        await scratch_db.execute(
            "INSERT INTO miniapps (app_id, developer_id, name, created_at, updated_at)"
            " VALUES ($1, $2, 'x', now(), now())",
            app_id,
            dev,
        )
    await apply_migrations(scratch_db)
    rows = await scratch_db.fetch(
        "SELECT r.app_id, r.status, m.account_id FROM app_id_registrations r"
        " JOIN developer_org_members m ON m.org_id = r.org_id ORDER BY r.app_id"
    )
    assert [(r["app_id"], r["status"], r["account_id"]) for r in rows] == [
        ("com.example.clinic", "approved", dev),
        ("gov.guangde.medical", "pending", dev),
    ]
    county = await scratch_db.fetch("SELECT namespace FROM developer_namespaces ORDER BY namespace")
    assert [r["namespace"] for r in county] == ["cn.gov", "gov.guangde"]


async def test_events_given_up_before_0271_are_kept_their_retention_period_from_then(scratch_db):
    """0271: a scan event given up long before (the outbox kept failed rows, nobody could replay them) is not
    deleted by the first purge after the upgrade: operators get the retention period to replay it."""
    await apply_migrations(scratch_db, [m for m in migration_files() if m.version < 271])
    scan_id = uuid.uuid4()
    await scratch_db.execute(
        "INSERT INTO scan_outbox (scan_id, terminal_id, scanned_at, event, status, created_at, attempt, last_error)"
        " VALUES ($1, 'bus-1', now() - interval '40 days', '{}', 'failed', now() - interval '40 days', 10,"
        " 'miniapp.failed')",
        scan_id,
    )
    await apply_migrations(scratch_db)
    now = dt.datetime.now(dt.UTC)
    assert await outbox_repository.purge(scratch_db, now - dt.timedelta(days=14), 1000) == 0
    kept = await scratch_db.fetchrow(
        "SELECT status, finished_at FROM scan_outbox WHERE scan_id = $1", scan_id
    )
    assert kept is not None and kept["status"] == "failed"
    assert kept["finished_at"] > now - dt.timedelta(minutes=5)


async def test_refunds_given_before_0480_are_in_the_residents_payment_list(scratch_db):
    """0480: a payment its app refunded before the resident's list kept refunds shows them after the upgrade: the
    total from the one-card's charge, each refund (amount, time) from the answer the one-card kept for its key."""
    await apply_migrations(scratch_db, [m for m in migration_files() if m.version < 480])
    db = scratch_db
    owner = await db.fetchval(
        "INSERT INTO accounts (phone_index, phone_enc) VALUES ($1, $2) RETURNING id",
        secrets.token_bytes(32),
        b"x",
    )
    wallet = await db.fetchval(
        "INSERT INTO ledger_accounts (code, kind, balance_fen, min_balance_fen) VALUES ('wallet:1', 'wallet', 0, 0)"
        " RETURNING id"
    )
    card = await db.fetchval(
        "INSERT INTO onecard_accounts (owner_account_id, ss_card_enc, ss_card_index, account_ref, wallet_id)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id",
        owner,
        b"x",
        secrets.token_bytes(32),
        secrets.token_bytes(16),
        wallet,
    )
    payments = []
    for n, refunded in enumerate((300, 0)):
        journal = await db.fetchval(
            "INSERT INTO ledger_journals (kind, reference, posted_at) VALUES ('charge', $1, now()) RETURNING id",
            f"charge:{n}",
        )
        charge = await db.fetchval(
            "INSERT INTO onecard_charges (onecard_account_id, amount_fen, refunded_fen, reason, app_id, journal_id,"
            " created_at) VALUES ($1, 1000, $2, 'an item', 'test.shop', $3, now()) RETURNING id",
            card,
            refunded,
            journal,
        )
        payments.append(
            await db.fetchval(
                "INSERT INTO miniapp_payments (app_id, account_id, amount_fen, reason, idempotency_key, status,"
                " charge_id, created_at, decided_at) VALUES ('test.shop', $1, 1000, 'an item', $2, 'succeeded', $3,"
                " now(), now()) RETURNING id",
                owner,
                f"buy-{n}",
                charge,
            )
        )
        if refunded:
            for key, fen, total in (("k1", 100, 100), ("k2", 200, 300)):
                await db.execute(
                    "INSERT INTO idempotency_keys (scope, key, request_hash, status, response, created_at)"
                    " VALUES ($1, $2, $3, 200, $4::jsonb, now() - make_interval(mins => $5))",
                    f"onecard.refund:{charge}",
                    f"miniapp:{key}",
                    b"h",
                    f'{{"charge_id": {charge}, "amount_fen": {fen}, "refunded_fen": {total}, "balance_fen": 0}}',
                    10 - total // 100,
                )
    await apply_migrations(scratch_db)
    totals = await db.fetch("SELECT id, refunded_fen FROM miniapp_payments ORDER BY id")
    assert [(r["id"], r["refunded_fen"]) for r in totals] == [(payments[0], 300), (payments[1], 0)]
    rows = await db.fetch(
        "SELECT payment_id, amount_fen, reason, idempotency_key FROM miniapp_payment_refunds ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [(payments[0], 100, None, "k1"), (payments[0], 200, None, "k2")]
