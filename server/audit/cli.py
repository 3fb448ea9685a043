"""`yima audit verify|checkpoint`: check the MAC chain against signed checkpoints; sign the head now."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import asyncpg

from server.audit import checkpoints, repository
from server.audit.service import verify_chain
from server.cli_support import Commands, add_common_options, cli_settings, database
from server.settings import Settings


async def _verify(settings: Settings, files: list[Path]) -> int:
    from server.keys import repository as keys_repository
    from server.keys.service import ROOT_PURPOSE, decode_key
    from server.security import DerivedKeys, FieldCipher, load_master_key

    keys = DerivedKeys.derive(load_master_key(settings))
    conn = await asyncpg.connect(settings.database_url)
    try:
        # Read jsonb exactly as the app does, so MACs are recomputed over the same values.
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        await conn.execute("SET TIME ZONE 'UTC'")
        cipher = FieldCipher(keys)
        # Only root keys whose private half decrypts under our master key: a key row slipped into the database
        # cannot vouch for a forged checkpoint.
        roots = {
            key.kid: key.public_key
            for key in (decode_key(r, cipher) for r in await keys_repository.list_keys(conn, ROOT_PURPOSE))
        }
        held = [checkpoints.from_row(r) for r in await repository.checkpoints_after(conn, 0, 2**31)]
        for path in files:
            held += checkpoints.read_file(path)
        forged = [c for c in held if not c.verify(roots)]
        if forged:
            print(f"checkpoint of size {forged[0].size}: the signature is not valid", file=sys.stderr)
            return 1
        checked, broken = await verify_chain(conn, keys.audit_chain, held)
    finally:
        await conn.close()
    if broken is None:
        print(f"audit log intact: {checked} record(s) verified against {len(held)} checkpoint(s)")
        return 0
    detail = f" ({broken.detail})" if broken.detail else ""
    print(
        f"audit log BROKEN at record {broken.seq}: {broken.problem}{detail} (after {checked - 1} good record(s))",
        file=sys.stderr,
    )
    return 1


def cmd_audit_verify(args: argparse.Namespace) -> int:
    with database(cli_settings(args)) as settings:
        files = [Path(f) for f in args.checkpoints or ()]
        default = settings.resolved_audit_checkpoint_file
        if not files and default.exists():
            files = [default]
        return asyncio.run(_verify(settings, files))


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    async def run(settings: Settings) -> int:
        from server.app import create_app
        from server.audit.plugin import publish_checkpoint

        app = create_app(settings)
        async with app.lifespan():
            checkpoint = await publish_checkpoint(app.state.core)
        if checkpoint is None:
            print("the head is signed already (or the log is empty); nothing new")
        else:
            print(
                f"checkpoint: {checkpoint.size} record(s), head {checkpoint.head}, signed by {checkpoint.key_id}"
            )
            print(f"appended to {settings.resolved_audit_checkpoint_file}")
        return 0

    with database(cli_settings(args)) as settings:
        return asyncio.run(run(settings))


def add_commands(commands: Commands) -> None:
    audit = commands.add_parser("audit", help="the append-only audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser(
        "verify", help="check the MAC chain and signed checkpoints; exit 1 naming the first break"
    )
    add_common_options(verify)
    verify.add_argument(
        "--checkpoints",
        action="append",
        metavar="FILE",
        help="checkpoints kept outside the database (JSON lines, as exported or fetched); default: this node's file",
    )
    verify.set_defaults(func=cmd_audit_verify)
    checkpoint = audit_sub.add_parser(
        "checkpoint", help="sign the chain's head now and append it to the file"
    )
    add_common_options(checkpoint)
    checkpoint.set_defaults(func=cmd_audit_checkpoint)
