"""`yima onecard reconcile --date YYYY-MM-DD`: the daily reconciliation report; `yima onecard expire-topups`."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
from typing import Any

import msgspec


def cmd_onecard(args: argparse.Namespace) -> int:
    from server.cli import _cli_mode, _database, _settings

    async def run(settings: Any) -> int:
        from server.app import create_app

        app = create_app(settings)
        async with app.lifespan():
            topups = app.state.onecard_topups
            if args.onecard_command == "reconcile":
                report = await topups.reconcile(dt.date.fromisoformat(args.date))
                print(json.dumps(msgspec.to_builtins(report), ensure_ascii=False, indent=2))
                return 1 if report.mismatches else 0
            async with app.state.core.db.transaction() as conn:
                closed = await topups.expire(conn)
            print(f"expired {closed} pending top-up order(s)")
            return 0

    with _database(_settings(args, mode=_cli_mode(args))) as settings:
        return asyncio.run(run(settings))


def register(sub: Any) -> None:
    from server.cli import _common

    onecard = sub.add_parser("onecard", help="the city one-card: reconciliation, top-up housekeeping")
    onecard_sub = onecard.add_subparsers(dest="onecard_command", required=True)
    reconcile = onecard_sub.add_parser("reconcile", help="compare the provider's daily bill with the ledger")
    _common(reconcile)
    reconcile.add_argument(
        "--date", required=True, help="YYYY-MM-DD, China Standard Time (exit 1 on mismatches)"
    )
    expire = onecard_sub.add_parser("expire-topups", help="close pending top-ups past their expiry locally")
    _common(expire)
    for parser in (reconcile, expire):
        parser.set_defaults(func=cmd_onecard)
