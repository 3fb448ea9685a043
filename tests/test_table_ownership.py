"""Each domain owns its tables: no module of one domain names another domain's table in its SQL.

Owners come from the migrations (the file that creates a table names its domain, or the table is listed below);
the SQL is every string literal in server/, so a query anywhere in a domain counts, not only in its repository.
Another domain reaches a table through its owner, by a typed port passed at start-up (a Protocol owned by the
consumer, e.g. `server.terminals.ports.ResidentNames`, which identity answers)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SERVER = Path(__file__).resolve().parent.parent / "server"
MIGRATIONS = SERVER / "db" / "migrations"

# The domain that owns the tables a migration creates. `kernel` is server/*.py (not a domain's folder).
MIGRATION_OWNERS = {
    "0010_credentials.sql": "credentials",
    "0011_terminals.sql": "terminals",
    "0020_onecard.sql": "onecard",
    "0030_platform.sql": "platform",
    "0060_developer_device_login.sql": "platform",
    "0070_payment_simulator.sql": "onecard",
    "0080_ended_sessions.sql": "auth",
    "0081_audit_checkpoints.sql": "audit",
    "0090_issued_ss_cards.sql": "onecard",
    "0091_app_id_registrations.sql": "platform",
    "0100_collections.sql": "platform",
    "0101_usage_shards.sql": "platform",
    "0110_miniapp_staff.sql": "platform",
    "0112_terminal_enrolment_units.sql": "terminals",
    "0120_jobs.sql": "platform",
    "0150_terminal_enrolments.sql": "terminals",
    "0200_terminal_documents.sql": "platform",
    "0250_scan_outbox.sql": "terminals",
    "0270_scan_outbox_turns.sql": "terminals",
    "0271_scan_outbox_kept.sql": "terminals",
    "0460_terminal_lists.sql": "platform",
    "0480_payment_refunds.sql": "platform",
}
# The foundation migration creates tables for several domains.
TABLE_OWNERS = {
    "accounts": "identity",
    "account_roles": "identity",
    "otp_codes": "identity",
    "sessions": "identity",
    "refresh_tokens": "identity",
    "signing_keys": "keys",
    "idempotency_keys": "kernel",
    "audit_log": "audit",
}

# Reads that still cross a domain's wall, each with why it is not a port yet. This list may only shrink: the test
# fails for an entry that no longer happens, so remove it when its port lands. Empty: every crossing is a port
# (the access guard's roles: `server.auth.live_roles.RoleRecord`; a code's verified ID index:
# `server.credentials.ports.Residents`; both answered by identity).
ALLOWED: set[tuple[str, str]] = set()

SQL_TABLE = re.compile(r"\b(?:from|join|into|update|table)\s+([a-z_][a-z0-9_]*)", re.IGNORECASE)


def _owners() -> dict[str, str]:
    owners: dict[str, str] = {}
    for migration in sorted(MIGRATIONS.glob("*.sql")):
        created = re.findall(
            r"create table (?:if not exists )?([a-z_][a-z0-9_]*)", migration.read_text(), re.I
        )
        for table in created:
            owner = TABLE_OWNERS.get(table) or MIGRATION_OWNERS.get(migration.name)
            assert owner, f"{migration.name} creates {table}: name its owning domain in {__name__}"
            owners[table] = owner
    return owners


def _domain(module: Path) -> str:
    parts = module.relative_to(SERVER).parts
    return parts[0] if len(parts) > 1 else "kernel"


def _crossings(owners: dict[str, str]) -> dict[tuple[str, str], set[str]]:
    seen: dict[tuple[str, str], set[str]] = {}
    for module in sorted(SERVER.rglob("*.py")):
        domain = _domain(module)
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for table in SQL_TABLE.findall(node.value):
                    owner = owners.get(table.lower())
                    if owner is not None and owner != domain:
                        seen.setdefault((domain, table.lower()), set()).add(str(module.relative_to(SERVER)))
    return seen


def test_no_domain_reads_or_writes_another_domains_table():
    owners = _owners()
    assert owners["accounts"] == "identity" and owners["scans"] == "terminals"
    crossings = _crossings(owners)
    unexpected = {k: v for k, v in crossings.items() if k not in ALLOWED}
    assert not unexpected, f"SQL on another domain's table (go through its owner by a port): {unexpected}"
    stale = ALLOWED - crossings.keys()
    assert not stale, f"no longer crossing; remove from ALLOWED: {stale}"
