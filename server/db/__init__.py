"""PostgreSQL access: the asyncpg pool, request-scoped transactions and forward-only migrations."""

from server.db.migrate import MigrationError, apply_migrations, migration_files
from server.db.pool import Database, create_pool

__all__ = ["Database", "MigrationError", "apply_migrations", "create_pool", "migration_files"]
