"""Bad input answers 4xx problem+json with a stable code; an unexpected error answers a generic 500 with a request id."""

from __future__ import annotations

from litestar import get
from litestar.params import FromPath

from server.app import create_app
from server.auth import allow
from server.errors import AppError, Unavailable
from tests.conftest import login, serve


async def test_malformed_json(client):
    r = await client.post(
        "/v1/auth/otp", content=b'{"phone": "138', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "request.malformed"


async def test_unknown_field_wrong_type_missing_field(client):
    for body, needle in [
        ({"phone": "13800138000", "phnoe": "x"}, "phnoe"),
        ({"phone": 13800138000}, "str"),
        ({}, "phone"),
        ({"phone": "12345"}, "phone"),
    ]:
        r = await client.post("/v1/auth/otp", json=body)
        assert r.status_code == 400, body
        problem = r.json()
        assert problem["code"] == "request.invalid"
        assert needle in problem["detail"], problem


async def test_body_over_the_limit_is_413(client):
    big = b'{"phone": "' + b"1" * 2_000_000 + b'"}'
    r = await client.post("/v1/auth/otp", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["code"] == "request.too_large"


async def test_unknown_route_and_method(client):
    r = await client.get("/v1/nope")
    assert (r.status_code, r.json()["code"]) == (404, "request.not_found")
    r = await client.delete("/v1/auth/otp")
    assert (r.status_code, r.json()["code"]) == (405, "request.method_not_allowed")


async def test_unexpected_error_is_generic_500_with_request_id(settings, caplog):
    @get("/boom", opt=allow("public"))
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    app = create_app(settings)
    app.register(boom)
    async with serve(app) as c:
        r = await c.get("/boom")
    assert r.status_code == 500
    problem = r.json()
    assert problem["code"] == "internal"
    assert "secret internal detail" not in r.text
    assert problem["request_id"] == r.headers["x-request-id"]
    assert any(problem["request_id"] == getattr(rec, "request_id", None) for rec in caplog.records)


async def test_request_id_is_echoed_when_well_formed(client):
    r = await client.get("/health/live", headers={"x-request-id": "abc12345-trace"})
    assert r.headers["x-request-id"] == "abc12345-trace"
    r = await client.get("/health/live", headers={"x-request-id": "bad id\nwith newline"})
    assert r.headers["x-request-id"] != "bad id\nwith newline"


async def test_problem_for_auth_errors_has_code(client):
    s = await login(client)
    r = await client.get("/v1/me", headers={"authorization": "Basic abc"})
    assert r.json()["code"] == "auth.required"
    assert (await client.get("/v1/me", headers=s.headers)).status_code == 200


async def test_refusals_carry_the_request_id_too(client):
    r = await client.get("/v1/me", headers={"x-request-id": "trace-401-abcdef"})
    assert r.status_code == 401
    assert r.headers["x-request-id"] == "trace-401-abcdef" == r.json()["request_id"]


async def test_every_503_says_when_to_try_again(settings):
    """Retry-After on every 503: the common error, one with its own code, and one built by hand."""

    @get("/unavailable/{how:str}", opt=allow("public"))
    async def unavailable(how: FromPath[str]) -> None:
        if how == "plain":
            raise Unavailable()
        if how == "coded":
            raise Unavailable("The scan could not be stored", code="service.db_unavailable")
        err = AppError("busy", code="miniapp.busy")
        err.status = 503  # type: ignore[misc]
        raise err

    app = create_app(settings)
    app.register(unavailable)
    async with serve(app) as c:
        for how in ("plain", "coded", "by-hand"):
            r = await c.get(f"/unavailable/{how}")
            assert (r.status_code, r.headers.get("retry-after")) == (503, "1"), how
