"""Attacks with malformed input (issue 16, point 13): each must be a 4xx with a stable code, never a 500."""

from __future__ import annotations

import pytest

from tests.conftest import AppClient, login, login_with_role

ABOVE_INT64 = str(2**63)
DEEP = "[" * 100_000 + "]" * 100_000


def _refused(r, *, status: int | tuple[int, ...] = (400, 404, 422)) -> str:
    statuses = (status,) if isinstance(status, int) else status
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/problem+json")
    return str(r.json()["code"])


def _deep_object(depth: int, leaf: str = "1") -> str:
    return '{"a":' * depth + leaf + "}" * depth


@pytest.mark.parametrize(
    ("path", "role"),
    [
        ("/v1/auth/otp", None),
        ("/v1/auth/token", None),
        ("/v1/me/identity", "resident"),
        ("/v1/admin/terminals", "operator"),
        ("/v1/me/onecard/topups", "resident"),
        ("/v1/authority/health-status", "health_authority"),
    ],
)
async def test_deeply_nested_json_body_is_refused_not_a_crash(client: AppClient, path: str, role: str | None):
    headers = {"content-type": "application/json", "Idempotency-Key": "deep-json-0001"}
    if role is not None:
        headers.update((await login_with_role(client, role)).headers)
    for body in (DEEP, _deep_object(100_000), '{"phone":' + DEEP + "}"):
        method = client.put if path == "/v1/me/identity" else client.post
        r = await method(path, content=body, headers=headers)
        assert _refused(r, status=(400, 413)) in (
            "request.too_deep",
            "request.malformed",
            "request.invalid",
            "request.too_large",
        )


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("delete", "/v1/me/devices/{n}", "resident"),
        ("post", "/v1/me/payments/{n}/confirm", "resident"),
        ("post", "/v1/me/payments/{n}/decline", "resident"),
        ("get", "/v1/admin/accounts/{n}", "operator"),
        ("delete", "/v1/developer/tokens/{n}", "developer"),
        ("get", "/v1/me/inbox?before={n}", "resident"),
        ("post", "/v1/admin/terminals/{n}/disable", "operator"),
    ],
)
async def test_integer_above_int64_in_path_or_query_is_refused(
    client: AppClient, method: str, path: str, role: str | None
):
    headers = (await login_with_role(client, role)).headers if role else {}
    for n in (ABOVE_INT64, "-" + ABOVE_INT64, "9" * 40):
        r = await getattr(client, method)(path.format(n=n), headers=headers)
        _refused(r)


async def test_statement_month_at_the_end_of_the_calendar_is_refused(client: AppClient):
    resident = await login_with_role(client, "resident")
    for month in ("9999-12", "0000-01", "2025-00", "2025-13", "１２３４-01"):
        r = await client.get("/v1/me/onecard/statements", params={"month": month}, headers=resident.headers)
        assert _refused(r) in ("onecard.month_invalid", "request.invalid")


async def test_reconciliation_dates_at_the_calendar_ends_are_refused(client: AppClient):
    operator = await login_with_role(client, "operator")
    for day in ("9999-12-31", "0001-01-01", "0000-00-00", "2025-02-30", "２０２５-01-01"):
        r = await client.get(
            "/v1/admin/onecard/reconciliation", params={"date": day}, headers=operator.headers
        )
        assert _refused(r) in ("onecard.date_invalid", "request.invalid"), day


async def test_nul_character_in_text_fields_is_refused(client: AppClient):
    resident = await login(client)
    r = await client.put(
        "/v1/me/identity",
        json={"name": "张\x00三", "id_number": "34182219900101123X"},
        headers=resident.headers,
    )
    _refused(r)
    operator = await login_with_role(client, "operator")
    r = await client.post(
        "/v1/admin/terminals",
        json={"name": "gate\x00", "kind": "bus", "scene": "s\x00", "public_key": "A" * 43},
        headers=operator.headers,
    )
    _refused(r)


async def test_unknown_app_or_account_reaching_a_foreign_key_is_a_404(client: AppClient):
    resident = await login(client)
    r = await client.delete("/v1/me/consents/no.such.app/birth_date", headers=resident.headers)
    assert (r.status_code, r.json()["code"]) == (404, "miniapp.not_found")
    operator = await login_with_role(client, "operator")
    r = await client.post(
        "/v1/admin/revocations", json={"account_id": 2**62, "reason": "lost phone"}, headers=operator.headers
    )
    assert (r.status_code, r.json()["code"]) == (404, "account.not_found")
