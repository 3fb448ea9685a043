"""GET /health (readiness), GET /health/live, and GET /metrics on the operations listener only."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.auth import allow
from server.auth.guards import PUBLIC
from server.errors import NotFound
from server.ops.schemas import HealthReport


@get("/health/live", opt=allow(PUBLIC), operation_id="liveness", tags=["ops"])
async def live() -> HealthReport:
    """The process is up and serving (no dependency checks)."""
    return HealthReport("ok", {})


@get("/health", opt=allow(PUBLIC), operation_id="readiness", tags=["ops"])
async def health(request: Request[Any, Any, Any]) -> Response[HealthReport]:
    """Ready to serve: PostgreSQL answers and, when configured, Redis answers. 503 otherwise."""
    core = request.app.state.core
    checks: dict[str, str] = {}

    async def database() -> None:
        async with core.db.connection() as conn:
            await conn.fetchval("SELECT 1")

    async def cache() -> None:
        await core.cache.ping()

    for name, probe in (("database", database), ("redis", cache)):
        if name == "redis" and not core.settings.redis_url:
            checks[name] = "not_configured"
            continue
        try:
            await asyncio.wait_for(probe(), timeout=2.0)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"failing: {type(exc).__name__}"
    ok = all(v in ("ok", "not_configured") for v in checks.values())
    return Response(
        HealthReport("ok" if ok else "unavailable", checks),
        status_code=200 if ok else 503,
        headers=None if ok else {"Retry-After": "5"},
    )


@get("/metrics", opt=allow(PUBLIC), operation_id="metrics", tags=["ops"], include_in_schema=False)
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus text exposition of this worker's metrics, on the YIMA_METRICS_PORT listener only.

    Route names, counts and latencies tell an attacker what is deployed and what is busy: the public port answers
    404 as for any unknown path. The listening socket decides, not a header anyone could send."""
    core = request.app.state.core
    server = request.scope.get("server")
    if not core.settings.metrics_port or not server or server[1] != core.settings.metrics_port:
        raise NotFound()
    registry = core.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
