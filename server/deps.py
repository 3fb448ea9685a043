"""Names of the dependencies every route may ask for, as typed markers (Litestar's named injection)."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from litestar.di import NamedDependency

from server.auth.guards import Principal

Db: TypeAlias = NamedDependency[asyncpg.Connection]
"""`db: Db` — the request-scoped transaction (commit on success, rollback on error)."""
Caller: TypeAlias = NamedDependency[Principal]
"""`principal: Caller` — who the guard admitted."""
