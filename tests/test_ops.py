"""Health (readiness of PostgreSQL and Redis) and Prometheus metrics."""

from __future__ import annotations

import msgspec

from server.app import create_app
from server.settings import load_settings
from tests.conftest import METRICS_URL, serve


async def test_health_checks_database_and_redis(client):
    r = await client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


async def test_health_is_503_when_redis_is_down(settings):
    broken = load_settings({}, **{**msgspec.structs.asdict(settings), "redis_url": "redis://127.0.0.1:1/0"})
    async with serve(create_app(broken)) as c:
        r = await c.get("/health")
        live = await c.get("/health/live")
    assert r.status_code == 503 and int(r.headers["retry-after"]) > 0
    assert r.json()["checks"]["database"] == "ok"
    assert r.json()["checks"]["redis"].startswith("failing")
    assert live.status_code == 200


async def test_metrics_count_requests_by_route_template(client):
    await client.get("/health/live")
    await client.get("/v1/admin/accounts/12345")  # 401, counted under its template, not the raw id
    r = await client.get(METRICS_URL)
    assert r.status_code == 200
    text = r.text
    assert 'yima_http_requests_total{method="GET",route="/health/live",status="200"}' in text
    assert 'route="/v1/admin/accounts/{account_id}",status="401"' in text
    assert "12345" not in text


async def test_metrics_are_not_on_the_public_port(client):
    public = await client.get("/metrics")
    assert (public.status_code, public.json()["code"]) == (404, "request.not_found")
    assert "yima_http_requests_total" not in public.text
    assert (await client.get(METRICS_URL)).status_code == 200
