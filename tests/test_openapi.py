"""The committed openapi/openapi.json is what the app serves; regenerate with `yima openapi`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from server.errors import PROBLEM_JSON
from server.openapi_export import openapi_document, render
from server.platform.gateway.controllers import APP_ANSWER


def test_committed_openapi_matches_the_app(repo_root):
    committed = Path(repo_root, "openapi", "openapi.json").read_text(encoding="utf-8")
    assert committed == render(), (
        "openapi/openapi.json drifted from the app: run `yima openapi` and commit it"
    )


# ---- the document tells the truth about errors -----------------------------------------------------------------

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# Public reads without input: nothing to refuse. Readiness answers 503 with its own health report, not a problem.
APP_ANSWER_DOC = APP_ANSWER.to_schema()
CANNOT_FAIL = {"liveness", "readiness", "getTrustList", "getTrustListInfo"}


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in {"get", "put", "post", "delete", "patch", "head"}:
                yield method, path, operation


def _codes(operation: dict[str, Any], status: str) -> set[str]:
    examples = (
        operation["responses"].get(status, {}).get("content", {}).get(PROBLEM_JSON, {}).get("examples", {})
    )
    return {example["value"]["code"] for example in examples.values()}


def test_every_error_response_is_problem_json_with_its_codes() -> None:
    document = openapi_document()
    assert not [path for path in document["paths"] if path.startswith("/schema")]
    silent = set()
    for method, path, operation in _operations(document):
        errors = {s: r for s, r in operation["responses"].items() if s[0] in "45"}
        if not errors:
            silent.add(operation["operationId"])
        passes_app_answers = operation["operationId"].startswith("callMiniapp")
        if passes_app_answers:  # a mini-app's own answer, any status and media type, besides the gateway's
            assert operation["responses"]["default"]["content"] == {"*/*": APP_ANSWER_DOC}, (method, path)
        for status, response in errors.items():
            # never Litestar's {status_code, detail, extra}: the API answers every failure as problem+json
            own = [PROBLEM_JSON, "*/*"] if passes_app_answers else [PROBLEM_JSON]
            assert list(response["content"]) == own, (method, path, status)
            assert response["content"][PROBLEM_JSON]["schema"] == PROBLEM_REF, (method, path, status)
            codes = _codes(operation, status)
            assert codes and all(f"`{code}`" in response["description"] for code in codes), (
                method,
                path,
                status,
            )
            assert all(int(status) == example["value"]["status"] for example in _examples(response))
        if operation.get("parameters") or operation.get("requestBody"):
            assert "request.invalid" in _codes(operation, "400"), (method, path)
    assert silent == CANNOT_FAIL


def _examples(response: dict[str, Any]) -> list[dict[str, Any]]:
    return list(response["content"][PROBLEM_JSON]["examples"].values())


def test_routes_declare_their_domain_errors() -> None:
    operations = {op["operationId"]: op for _, _, op in _operations(openapi_document())}
    poll = operations["pollDeviceLogin"]
    assert _codes(poll, "400") == {
        "request.invalid",
        "request.malformed",
        "request.too_deep",
        "request.value_refused",
        "device.authorization_pending",
        "device.code_invalid",
    }
    assert _codes(poll, "429") == {"device.slow_down"} and _codes(poll, "410") == {"device.expired"}
    assert "401" not in poll["responses"]  # public: the device code is the credential
    confirm = operations["confirmDeviceLogin"]
    assert {"auth.required", "auth.token_expired"} <= _codes(confirm, "401")
    assert _codes(confirm, "403") == {"auth.forbidden"}
    assert _codes(confirm, "404") == {"device.user_code_unknown"}
    identity = operations["setIdentity"]
    assert _codes(identity, "422") == {"identity.name_invalid", "identity.id_number_invalid"}
    assert _codes(identity, "409") == {"identity.already_verified", "identity.id_number_taken"}
    release = operations["releaseMiniapp"]
    assert _codes(release, "409") == {"release.not_approved", "release.already_released"}
    gateway = operations["callMiniappPost"]
    assert {"miniapp.timeout", "miniapp.cpu_exceeded"} == _codes(gateway, "504")
    assert {"miniapp.quota_app", "miniapp.quota_resident"} <= _codes(gateway, "429")


async def test_a_route_without_a_token_answers_a_documented_401(client) -> None:  # type: ignore[no-untyped-def]
    """The document against the running app: every route that needs a caller refuses an anonymous one with a
    status and code the document lists for it."""
    checked = 0
    for method, path, operation in _operations(openapi_document()):
        if "auth.required" not in _codes(operation, "401"):
            continue  # public: anyone may call it
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        answer = await client.request(method.upper(), concrete)
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.headers["content-type"].startswith(PROBLEM_JSON)
        assert answer.json()["code"] in _codes(operation, "401"), (method, path)
        checked += 1
    assert checked > 40
