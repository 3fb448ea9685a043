"""What every `yima` command shares: the common options, settings from flags, the database to act on.

Domains add their own commands (`yima keys`, `yima audit`, ...) from their plugin's `add_cli_commands`; they import
these helpers from here, never from `server.cli`, so the command line has no hub that domains call back into.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol, runtime_checkable

import asyncpg

from server.settings import Mode, Settings, load_settings

# argparse's sub-command collection (`parser.add_subparsers()`); its class is private to argparse.
Commands = Any


@runtime_checkable
class CLIPlugin(Protocol):
    """A plugin that contributes `yima` commands: `add_cli_commands(commands)` adds its sub-parsers, each with a
    `func(args) -> int` default. A static method: the command line is built before any app or settings exist.

    Litestar's own `CLIPluginProtocol.on_cli_init` hands plugins a click group; `yima` is an argparse program
    whose help, options and exit statuses are part of its interface, so the same idea is kept with argparse."""

    @staticmethod
    def add_cli_commands(commands: Commands) -> None: ...


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="local state folder (YIMA_DATA_DIR, default ./data)")
    parser.add_argument("--database-url", help="PostgreSQL DSN (YIMA_DATABASE_URL); empty: the embedded one")
    parser.add_argument("--redis-url", help="Redis URL (YIMA_REDIS_URL); empty: in-process cache")


def settings_from(args: argparse.Namespace, **extra: Any) -> Settings:
    """Settings from YIMA_* variables, overridden by the command's flags and `extra`."""
    flags = {
        "data_dir": getattr(args, "data_dir", None),
        "database_url": getattr(args, "database_url", None),
        "redis_url": getattr(args, "redis_url", None),
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "workers": getattr(args, "workers", None),
    }
    flags.update(extra)
    return load_settings(None, **{k: v for k, v in flags.items() if v is not None})


def cli_settings(args: argparse.Namespace) -> Settings:
    """Settings for an administrative command: against the embedded database the CLI is a development tool;
    against a configured one, whatever YIMA_MODE says."""
    return settings_from(args, mode=Mode.DEVELOPMENT.value if uses_embedded(args) else None)


def uses_embedded(args: argparse.Namespace) -> bool:
    return not (getattr(args, "database_url", None) or os.environ.get("YIMA_DATABASE_URL"))


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[Settings]:
    """Use the configured database, or start/attach to the embedded one in the data folder."""
    if settings.database_url:
        yield settings
        return
    import msgspec

    from server.embedded import EmbeddedPostgres

    embedded = EmbeddedPostgres(settings.data_dir)
    url = embedded.start()
    try:
        yield load_settings(None, **{**msgspec.structs.asdict(settings), "database_url": url})
    finally:
        embedded.stop()


@contextlib.asynccontextmanager
async def audited_connection(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection for a command whose change goes on record (`server.audit.append`, in its transaction): the
    audit chain key derived from the master key, times in UTC, and jsonb as the servers write it, so a record's
    MAC is over what is read back. Commands name themselves `actor="cli"`: whoever runs them on the server's
    machine holds its master key."""
    from server import audit
    from server.security import DerivedKeys, load_master_key

    audit.use_chain_key(DerivedKeys.derive(load_master_key(settings)).audit_chain)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("SET TIME ZONE 'UTC'")
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        yield conn
    finally:
        await conn.close()
