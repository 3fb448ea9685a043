"""`yima onecard reconcile --date YYYY-MM-DD`: the daily reconciliation report; `yima onecard expire-topups`;
`yima onecard import-cards FILE`: the card issuer's record of which card belongs to which ID number."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from typing import Any

import msgspec

from server.cli_support import Commands, add_common_options, cli_settings, database


def cmd_onecard(args: argparse.Namespace) -> int:
    async def run(settings: Any) -> int:
        from server.app import create_app

        app = create_app(settings)
        async with app.lifespan():
            topups = app.state.onecard_topups
            if args.onecard_command == "import-cards":
                return await _import_cards(app, rows)
            if args.onecard_command == "reconcile":
                report = await topups.reconcile(dt.date.fromisoformat(args.date))
                print(json.dumps(msgspec.to_builtins(report), ensure_ascii=False, indent=2))
                return 1 if report.mismatches else 0
            async with app.state.core.db.transaction() as conn:
                closed = await topups.expire(conn)
            print(f"expired {closed} pending top-up order(s)")
            return 0

    rows = _read_cards(args.file) if args.onecard_command == "import-cards" else []
    with database(cli_settings(args)) as settings:
        return asyncio.run(run(settings))


def _read_cards(path: str) -> list[list[str]]:
    """CSV lines `id_number,card_number`, the card issuer's export."""
    with open(path, encoding="utf-8") as source:
        return [line.strip().split(",") for line in source if line.strip()]


async def _import_cards(app: Any, rows: list[list[str]]) -> int:
    """All or nothing, in one transaction."""
    from server.errors import AppError

    for number, row in enumerate(rows, 1):
        if len(row) != 2:
            print(f"line {number}: expected id_number,card_number", file=sys.stderr)
            return 2
    line = 0
    try:
        async with app.state.core.db.transaction() as conn:
            for line, (id_number, card_number) in enumerate(rows, 1):  # noqa: B007 - named in the error
                await app.state.onecard.record_issued_card(conn, id_number, card_number)
    except AppError as exc:
        print(f"line {line}: {exc.detail}; nothing recorded", file=sys.stderr)
        return 2
    print(f"recorded {len(rows)} issued card(s)")
    return 0


def add_commands(commands: Commands) -> None:
    onecard = commands.add_parser("onecard", help="the city one-card: reconciliation, top-up housekeeping")
    onecard_sub = onecard.add_subparsers(dest="onecard_command", required=True)
    reconcile = onecard_sub.add_parser("reconcile", help="compare the provider's daily bill with the ledger")
    add_common_options(reconcile)
    reconcile.add_argument(
        "--date", required=True, help="YYYY-MM-DD, China Standard Time (exit 1 on mismatches)"
    )
    expire = onecard_sub.add_parser("expire-topups", help="close pending top-ups past their expiry locally")
    add_common_options(expire)
    cards = onecard_sub.add_parser(
        "import-cards", help="record issued cards from the issuer's CSV (id_number,card_number)"
    )
    add_common_options(cards)
    cards.add_argument("file")
    for parser in (reconcile, expire, cards):
        parser.set_defaults(func=cmd_onecard)
