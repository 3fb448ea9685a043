"""Forward-only numbered SQL migrations, recorded with checksums; a changed applied file stops start-up."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger("yima.migrate")
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Any fixed number: serialises concurrent `yima migrate` / start-ups of several workers.
_LOCK_ID = 0x59494D41


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migration_files() -> list[Migration]:
    found: list[Migration] = []
    folder = resources.files("server.db") / "migrations"
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a number: {versions}")
    return found


async def apply_migrations(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Apply what is missing, in order, each in its own transaction. Returns the names applied."""
    migrations = migration_files() if migrations is None else migrations
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        applied = {
            r["version"]: r for r in await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        }
        known = {m.version for m in migrations}
        for version, row in applied.items():
            if version not in known:
                raise MigrationError(f"database has migration {row['name']} that this code does not know")
        done: list[str] = []
        for m in migrations:
            row = applied.get(m.version)
            if row is not None:
                if row["checksum"] != m.checksum:
                    raise MigrationError(
                        f"migration {m.name} was changed after it was applied (checksum differs); "
                        "migrations are forward-only: add a new numbered file instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    m.version,
                    m.name,
                    m.checksum,
                )
            log.info("applied migration", extra={"migration": m.name})
            done.append(m.name)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
