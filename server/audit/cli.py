"""`yima audit verify`: walk the hash chain and name the first record that was changed, deleted or reordered."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import asyncpg

from server.audit.service import verify_chain


async def _verify(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        # Read jsonb exactly as the app does, so hashes are recomputed over the same values.
        import json

        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        await conn.execute("SET TIME ZONE 'UTC'")
        checked, broken = await verify_chain(conn)
    finally:
        await conn.close()
    if broken is None:
        print(f"audit log intact: {checked} record(s) verified")
        return 0
    print(
        f"audit log BROKEN at record {broken.seq}: {broken.problem} (after {checked - 1} good record(s))",
        file=sys.stderr,
    )
    return 1


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from server.cli import _database, _settings

    with _database(_settings(args)) as settings:
        return asyncio.run(_verify(settings.database_url))


def register(sub: Any) -> None:
    from server.cli import _common

    audit = sub.add_parser("audit", help="the append-only audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check the hash chain; exit 1 at the first broken record")
    _common(verify)
    verify.set_defaults(func=cmd_audit_verify)
