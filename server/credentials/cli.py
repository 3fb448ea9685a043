"""`yima keys list|rotate|retire`: issuer (and other) signing keys; rotation and retirement republish the trust list."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from server.cli_support import Commands, add_common_options, cli_settings, database
from server.credentials.trust_list import ISSUER_PURPOSE
from server.keys.service import KeyChange


def cmd_keys(args: argparse.Namespace) -> int:
    async def run(settings: Any) -> int:
        from server.app import create_app

        app = create_app(settings)
        async with app.lifespan():
            keys, trust = app.state.core.keys, app.state.credentials.trust
            if args.keys_command == "rotate":
                # The new trust list is published before any worker signs with the new key.
                change = await keys.rotate(args.purpose, actor="cli", before_announce=trust.sync)
                print(
                    f"rotated {args.purpose}: new active key {change.key.kid}; older keys stay valid for verification"
                )
                _report_reach(change)
            elif args.keys_command == "retire":
                retired = await keys.retire(args.kid, actor="cli")
                if retired is None:
                    print(f"no active key {args.kid}")
                    return 1
                print(
                    f"retired {retired.key.kid} ({retired.key.purpose}); codes it signed are no longer accepted"
                )
                _report_reach(retired)
            await trust.sync()  # a changed issuer key set means a new trust list version
            active = {
                k.kid for p in {k.purpose for k in await keys.list_all()} for k in [await keys.active(p)]
            }
            for key in await keys.list_all():
                state = "retired" if key.retired_at else ("active" if key.kid in active else "verify-only")
                print(
                    f"{key.kid}  {key.purpose:<14} {key.alg:<8} {state:<12} created {key.created_at:%Y-%m-%d %H:%M}"
                )
            print(f"trust list version {trust.current.version}")
        return 0

    with database(cli_settings(args)) as settings:
        return asyncio.run(run(settings))


def _report_reach(change: KeyChange) -> None:
    print(f"workers confirmed: {change.workers_confirmed} of {change.workers_told} subscribed")
    if not change.everywhere:
        print(
            "warning: some workers did not confirm in time; they pick the change up at their next periodic reload",
            file=sys.stderr,
        )


def add_commands(commands: Commands) -> None:
    keys = commands.add_parser("keys", help="signing keys: list, rotate, retire")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    listing = keys_sub.add_parser("list", help="every key with its purpose and state")
    add_common_options(listing)
    rotate = keys_sub.add_parser("rotate", help="make a new active key; codes already shown stay valid")
    add_common_options(rotate)
    rotate.add_argument("--purpose", default=ISSUER_PURPOSE)
    retire = keys_sub.add_parser("retire", help="withdraw a key: everything it signed is refused")
    add_common_options(retire)
    retire.add_argument("kid")
    for parser in (listing, rotate, retire):
        parser.set_defaults(func=cmd_keys)
