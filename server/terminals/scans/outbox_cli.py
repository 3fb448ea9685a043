"""`yima scan-outbox list|replay|purge`: what the scan outbox delivered to apps and what it gave up, for operators.

The running servers deliver; these commands only read the rows, put rows back to be delivered again, or delete the
ones past the retention period (YIMA_SCAN_OUTBOX_RETENTION_DAYS; every node's deliverer does it hourly too).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import uuid

import asyncpg

from server import audit
from server.cli_support import Commands, add_common_options, audited_connection, cli_settings, database
from server.settings import Settings
from server.terminals.scans import outbox_repository as repo

STATUSES = ("failed", "pending", "delivered")
AUDITED_IDS = 1000
"""The replayed scan ids an audit record names (`count` says how many there were): `--all-failed` may be many."""


async def _connect(settings: Settings) -> asyncpg.Connection:
    conn = await asyncpg.connect(settings.database_url)
    await conn.execute("SET TIME ZONE 'UTC'")
    return conn


def _when(at: dt.datetime | None) -> str:
    return "-" if at is None else at.strftime("%Y-%m-%d %H:%M:%S")


def cmd_list(args: argparse.Namespace) -> int:
    async def run(settings: Settings) -> list[repo.KeptRow]:
        conn = await _connect(settings)
        try:
            return await repo.rows(conn, args.status, args.terminal, args.limit)
        finally:
            await conn.close()

    with database(cli_settings(args)) as settings:
        found = asyncio.run(run(settings))
    if args.json:
        print(json.dumps([_plain(r) for r in found], indent=2))
        return 0
    if not found:
        print(f"no {args.status} scan events")
        return 0
    print(
        f"{'scan id':36}  {'terminal':20}  {'scanned at (UTC)':19}  tries  put off  {'finished (UTC)':19}  last error"
    )
    for r in found:
        print(
            f"{r.scan_id!s:36}  {r.terminal_id:20}  {_when(r.scanned_at):19}  {r.attempt:5}  {r.deferred:7}"
            f"  {_when(r.finished_at):19}  {r.last_error or '-'}"
        )
    return 0


def _plain(r: repo.KeptRow) -> dict[str, object]:
    return {
        "scan_id": str(r.scan_id),
        "terminal_id": r.terminal_id,
        "scanned_at": r.scanned_at.isoformat(),
        "status": r.status,
        "attempt": r.attempt,
        "deferred": r.deferred,
        "created_at": r.created_at.isoformat(),
        "finished_at": None if r.finished_at is None else r.finished_at.isoformat(),
        "last_error": r.last_error,
    }


def cmd_replay(args: argparse.Namespace) -> int:
    try:
        wanted = [uuid.UUID(s) for s in args.scan_ids]
    except ValueError as exc:
        print(f"yima: not a scan id: {exc}", file=sys.stderr)
        return 2
    if bool(wanted) == args.all_failed:
        print("yima: name scan ids, or --all-failed (not both)", file=sys.stderr)
        return 2

    async def run(settings: Settings) -> list[uuid.UUID]:
        async with audited_connection(settings) as conn:
            async with conn.transaction():
                replayed = await repo.replay(
                    conn,
                    dt.datetime.now(dt.UTC),
                    scan_ids=wanted,
                    all_failed=args.all_failed,
                    terminal_id=args.terminal,
                )
                if replayed:  # the app hears these again: who asked for it is on record, with the change
                    await audit.append(
                        conn,
                        actor="cli",
                        action="scan_outbox.replayed",
                        target="scan_outbox" if args.terminal is None else f"terminal:{args.terminal}",
                        details={
                            "count": len(replayed),
                            "all_failed": args.all_failed,
                            "scan_ids": sorted(str(s) for s in replayed)[:AUDITED_IDS],
                        },
                    )
                return replayed

    with database(cli_settings(args)) as settings:
        replayed = asyncio.run(run(settings))
    print(
        f"replayed {len(replayed)} scan event(s): the running servers deliver them again, tries starting over"
    )
    missing = sorted(str(s) for s in set(wanted) - set(replayed))
    for scan_id in missing:
        print(f"yima: {scan_id}: no delivered or failed scan event with this id", file=sys.stderr)
    return 1 if missing else 0


def cmd_purge(args: argparse.Namespace) -> int:
    settings = cli_settings(args)
    days = settings.scan_outbox_retention_days if args.days is None else args.days
    if not days > 0:
        print("yima: --days: more than 0", file=sys.stderr)
        return 2

    async def run(settings: Settings) -> int:
        conn = await _connect(settings)
        before = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
        total = 0
        try:
            while (deleted := await repo.purge(conn, before, 1000)) > 0:
                total += deleted
        finally:
            await conn.close()
        return total

    with database(settings) as settings:
        deleted = asyncio.run(run(settings))
    print(f"deleted {deleted} delivered or failed scan event(s) finished more than {days:g} day(s) ago")
    return 0


def add_commands(commands: Commands) -> None:
    outbox = commands.add_parser(
        "scan-outbox", help="uploaded offline scans' events for apps: list, replay, purge (docs/scan.md)"
    )
    sub = outbox.add_subparsers(dest="scan_outbox_command", required=True)
    listing = sub.add_parser("list", help="the events of one status, latest first (default: failed ones)")
    add_common_options(listing)
    listing.add_argument("--status", choices=STATUSES, default="failed")
    listing.add_argument("--terminal", help="only this terminal's")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="a JSON list instead of a table")
    listing.set_defaults(func=cmd_list)
    replay = sub.add_parser(
        "replay",
        help="deliver delivered or failed events again (the app keys on the scan id: it may see a repeat)",
    )
    add_common_options(replay)
    replay.add_argument("scan_ids", nargs="*", metavar="SCAN_ID")
    replay.add_argument("--all-failed", action="store_true", help="every failed event (with --terminal: its)")
    replay.add_argument("--terminal", help="only this terminal's")
    replay.set_defaults(func=cmd_replay)
    purge = sub.add_parser("purge", help="delete delivered and failed events past the retention period now")
    add_common_options(purge)
    purge.add_argument(
        "--days",
        type=float,
        help="keep this many days instead (default: YIMA_SCAN_OUTBOX_RETENTION_DAYS, 14)",
    )
    purge.set_defaults(func=cmd_purge)
