"""POST /v1/scans is served by a plain ASGI handler (server/terminals/controllers/scans.py): it must keep the contract
every other route keeps, as documented in the OpenAPI document: access control, problem+json errors with stable
codes and the request id, the body limit, JSON answers."""

from __future__ import annotations

import time

from server.openapi_export import openapi_document
from tests.conftest import METRICS_URL, login, login_with_role
from tests.credentials.helpers import ankang_payload, register_terminal, terminal_token, verified_resident


async def _terminal(client):
    operator = await login_with_role(client, "operator")
    terminal_id, key = await register_terminal(client, operator, kind="clinic")
    return await terminal_token(client, terminal_id, key)


def _problem(r, status, code):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == code and body["request_id"] == r.headers["x-request-id"]
    return body


async def test_answer_is_json_with_a_request_id(client):
    headers = await _terminal(client)
    resident, _ = await verified_resident(client)
    payload = await ankang_payload(client, resident)
    r = await client.post(
        "/v1/scans", json={"payload": payload, "scanned_at": int(time.time() * 1000)}, headers=headers
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.headers["x-request-id"]
    body = r.json()
    assert body["result"] == "accept" and body["color"] == "green" and body["expires_at"].endswith("Z")
    iso = await client.post(
        "/v1/scans", json={"payload": payload, "scanned_at": "2026-11-29T08:00:00+08:00"}, headers=headers
    )
    assert iso.status_code == 200 and iso.json()["repeat"] is True  # clinic: the same code again, idempotent


async def test_access_control_applies(client):
    _problem(await client.post("/v1/scans", json={"payload": "x", "scanned_at": 0}), 401, "auth.required")
    resident = await login(client)
    _problem(
        await client.post("/v1/scans", json={"payload": "x", "scanned_at": 0}, headers=resident.headers),
        403,
        "auth.forbidden",
    )


async def test_bad_requests_answer_with_their_codes_and_never_500(client):
    headers = await _terminal(client)
    post = client.post
    _problem(await client.get("/v1/scans", headers=headers), 405, "request.method_not_allowed")
    _problem(
        await post(
            "/v1/scans", content=b"{not json", headers={**headers, "content-type": "application/json"}
        ),
        400,
        "request.malformed",
    )
    wrong_type = _problem(
        await post("/v1/scans", json={"payload": 7, "scanned_at": 0}, headers=headers), 400, "request.invalid"
    )
    assert "payload" in wrong_type["detail"]
    unknown = _problem(
        await post("/v1/scans", json={"payload": "x", "scanned_at": 0, "extra": 1}, headers=headers),
        400,
        "request.invalid",
    )
    assert "extra" in unknown["detail"]
    _problem(await post("/v1/scans", json={"payload": "x"}, headers=headers), 400, "request.invalid")
    naive = _problem(
        await post("/v1/scans", json={"payload": "x", "scanned_at": "2026-11-29T08:00:00"}, headers=headers),
        400,
        "request.invalid",
    )
    assert "UTC offset" in naive["detail"]
    _problem(
        await post("/v1/scans", json={"payload": "x", "scanned_at": 10**18}, headers=headers),
        400,
        "request.invalid",
    )
    big = b'{"payload": "' + b"A" * (1 << 20) + b'", "scanned_at": 0}'
    _problem(
        await post("/v1/scans", content=big, headers={**headers, "content-type": "application/json"}),
        413,
        "request.too_large",
    )


def test_the_route_is_documented_like_the_others():
    operation = openapi_document()["paths"]["/v1/scans"]["post"]
    assert operation["operationId"] == "scan" and operation["tags"] == ["scans"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ScanRequest"}
    assert answer == {"$ref": "#/components/schemas/ScanResponse"}


async def test_scans_are_counted_under_their_route_in_the_metrics(client):
    headers = await _terminal(client)
    await client.post("/v1/scans", json={"payload": "YA:junk", "scanned_at": 0}, headers=headers)
    metrics = (await client.get(METRICS_URL)).text
    assert 'yima_http_requests_total{method="POST",route="/v1/scans",status="200"}' in metrics
