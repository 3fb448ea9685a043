"""`yima admin grant`: grant a role to the account with this phone (the account is created if absent)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from server.auth.roles import Role
from server.cli_support import Commands, add_common_options, cli_settings, database
from server.settings import Settings


def cmd_admin_grant(args: argparse.Namespace) -> int:
    try:
        role = Role(args.role)
    except ValueError:
        print(f"unknown role {args.role!r}; one of: {', '.join(r.value for r in Role)}", file=sys.stderr)
        return 2

    async def run(settings: Settings) -> int:
        from server.app import create_app
        from server.identity.service import IdentityService

        app = create_app(settings)
        async with app.lifespan():
            identity: IdentityService = app.state.identity
            async with app.state.core.db.transaction() as conn:
                account_id = await identity.account_id_for_phone(conn, args.phone, create=True)
            assert account_id is not None  # created
            added = await identity.grant_role("cli", account_id, role)
        print(f"account {account_id}: role {role.value} " + ("granted" if added else "already held"))
        return 0

    with database(cli_settings(args)) as settings:
        return asyncio.run(run(settings))


def add_commands(commands: Commands) -> None:
    admin = commands.add_parser("admin", help="administration")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    grant = admin_sub.add_parser(
        "grant", help="grant a role to the account with this phone (created if absent)"
    )
    add_common_options(grant)
    grant.add_argument("--phone", required=True)
    grant.add_argument("--role", required=True)
    grant.set_defaults(func=cmd_admin_grant)
