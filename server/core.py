"""The core every domain stands on, built once at start-up: database, cache, keys, tokens, SMS, metrics.

`CorePlugin` wires it into Litestar (lifespan, the guard, shared dependencies, error handling, request context);
domain plugins then add their own routes and services without touching this file or `app.py`'s internals.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import asyncpg
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.plugins import InitPluginProtocol

from server import audit
from server.auth.guards import access_control_middleware, current_principal
from server.auth.live_roles import LiveRoles, RoleRecord
from server.auth.sessions import SessionRevocations
from server.auth.tokens import ACCESS_PURPOSE, AccessTokens
from server.cache import Cache, create_cache
from server.db import Database, apply_migrations, create_pool
from server.errors import EXCEPTION_HANDLERS, app_error_handler
from server.keys.service import KeyStore
from server.observability import Metrics, request_context_middleware
from server.ratelimit import RateLimits
from server.security import DerivedKeys, FieldCipher, load_master_key
from server.settings import Mode, Settings

log = logging.getLogger("yima.core")


@dataclass
class Core:
    settings: Settings
    db: Database
    cache: Cache
    cipher: FieldCipher
    keys: KeyStore
    tokens: AccessTokens
    metrics: Metrics
    derived_keys: DerivedKeys
    """The master key's keys per purpose; each plugin hands its domain only its own."""
    sessions: SessionRevocations
    rate_limits: RateLimits
    roles: LiveRoles

    async def close(self) -> None:
        await self.roles.close()
        await self.sessions.close()
        await self.keys.close()
        await self.cache.close()
        await self.db.close()


async def migrate(settings: Settings) -> list[str]:
    """Apply pending migrations as the connecting (owner) role."""
    conn = await asyncpg.connect(settings.database_url, timeout=settings.db_acquire_timeout_s)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()


async def start_core(settings: Settings, metrics: Metrics, role_record: RoleRecord) -> Core:
    if not settings.database_url:
        raise RuntimeError("YIMA_DATABASE_URL is not set (use `yima dev` for the embedded database)")
    derived_keys = DerivedKeys.derive(load_master_key(settings, create=settings.mode is not Mode.PRODUCTION))
    audit.use_chain_key(derived_keys.audit_chain)
    applied = await migrate(settings)
    if applied:
        log.info("migrations applied", extra={"count": len(applied)})
    pool = await create_pool(settings)
    db = Database(pool, settings.db_acquire_timeout_s)
    cache = create_cache(settings.redis_url, settings.redis_namespace)
    cipher = FieldCipher(derived_keys)
    keys = KeyStore(db, cipher)
    await keys.start(cache)
    await keys.keys(ACCESS_PURPOSE)  # load (or create) before serving, so requests never wait on it
    tokens = AccessTokens(
        keys, issuer=settings.jwt_issuer, audience=settings.base_url, ttl_s=settings.access_token_ttl_s
    )
    sessions = SessionRevocations(cache, db)
    await sessions.start()
    roles = LiveRoles(cache, db, role_record)
    await roles.start()
    return Core(
        settings,
        db,
        cache,
        cipher,
        keys,
        tokens,
        metrics,
        derived_keys,
        sessions,
        RateLimits(cache),
        roles,
    )


async def provide_db(state: State) -> AsyncGenerator[asyncpg.Connection, None]:
    """A request-scoped transaction: commits when the handler returns, rolls back when it raises."""
    async with state.core.db.transaction() as conn:
        yield conn


class CorePlugin(InitPluginProtocol):
    def __init__(self, settings: Settings, *, role_record: RoleRecord) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.role_record = role_record
        """The roles granted to accounts, which the access guard checks on each request (identity keeps them)."""

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.exception_handlers.update(EXCEPTION_HANDLERS)  # type: ignore[arg-type]
        app_config.middleware.insert(0, request_context_middleware(self.metrics, app_error_handler))
        app_config.middleware.insert(1, access_control_middleware)
        app_config.dependencies["db"] = Provide(provide_db)
        app_config.dependencies["principal"] = Provide(current_principal, sync_to_thread=False)
        app_config.on_startup.insert(0, self._start)
        app_config.on_shutdown.append(self._stop)
        app_config.debug = False
        return app_config

    async def _start(self, app: Litestar) -> None:
        app.state.core = await start_core(self.settings, self.metrics, self.role_record)

    async def _stop(self, app: Litestar) -> None:
        core: Core | None = getattr(app.state, "core", None)
        if core is not None:
            await core.close()
