"""Squatting app ids (issue 16, point 11): a garbage upload used to register any id, lookalikes of the county's
`gov.guangde.*` included, to whoever uploaded it first. Now an id is reserved only by a registration an operator
approved, inside a namespace an operator gave the developer's organisation, and an upload outside that is refused
before anything is stored."""

from __future__ import annotations

import io
import secrets
import zipfile
from typing import Any

from tests.conftest import AppClient, Session, login_with_role

GARBAGE = b"PK\x05\x06" + b"\x00" * 18  # an empty zip: every check fails


def _archive(app_id: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("miniapp.toml", f'id = "{app_id}"\nname = "Probe"\nversion = "1.0.0"\nentry = "app:app"\n')
        z.writestr("app.py", "from yima_sdk import App\n\napp = App()\n")
    return buf.getvalue()


async def _developer(client: AppClient) -> tuple[Session, dict[str, str]]:
    developer = await login_with_role(client, "developer")
    r = await client.post("/v1/developer/tokens", headers=developer.headers)
    return developer, {"authorization": f"Bearer {r.json()['token']}"}


async def _upload(client: AppClient, token: dict[str, str], app_id: str, data: bytes) -> Any:
    return await client.post(
        f"/v1/developer/apps/{app_id}/versions",
        content=data,
        headers={**token, "content-type": "application/zip"},
    )


async def _stored(client: AppClient, app_id: str) -> bool:
    async with client.app.state.core.db.connection() as conn:
        return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM miniapps WHERE app_id = $1)", app_id))


async def _audited(client: AppClient, target: str) -> list[str]:
    async with client.app.state.core.db.connection() as conn:
        rows = await conn.fetch("SELECT action FROM audit_log WHERE target = $1 ORDER BY seq", target)
    return [r["action"] for r in rows]


async def test_garbage_upload_under_county_ids_and_lookalikes_registers_nothing(client: AppClient):
    _, token = await _developer(client)
    tag = secrets.token_hex(4)
    for app_id in (
        f"gov.guangde.m{tag}",  # the county's own namespace
        f"gov.guangde-medical.m{tag}",  # lookalikes: another label, not inside gov.guangde
        f"gov.guangdee.m{tag}",
        f"cn.gov.guangde.m{tag}",
        f"com.example{tag}.clinic",  # anything at all: a developer with no namespace holds no id
    ):
        for data in (GARBAGE, _archive(app_id)):
            r = await _upload(client, token, app_id, data)
            assert (r.status_code, r.json()["code"]) == (403, "app_id.outside_namespace"), (app_id, r.text)
        assert not await _stored(client, app_id), app_id
        r = await client.post("/v1/developer/app-ids", json={"app_id": app_id}, headers=token)
        assert (r.status_code, r.json()["code"]) == (403, "app_id.outside_namespace"), (app_id, r.text)


async def test_an_id_is_published_only_after_an_operator_approved_it_in_the_orgs_namespace(client: AppClient):
    developer, token = await _developer(client)
    squatter, squatter_token = await _developer(client)
    operator = await login_with_role(client, "operator")
    tag = secrets.token_hex(4)
    namespace, app_id = f"com.example{tag}", f"com.example{tag}.clinic"

    # the county's namespaces and their lookalikes are given to no one; namespaces never overlap
    for reserved in ("gov.guangdee", "gov.guangde.sub", "cn.gov.other"):
        r = await client.post(
            "/v1/admin/developer-orgs",
            json={"name": "Lookalike Ltd", "namespace": reserved},
            headers=operator.headers,
        )
        assert (r.status_code, r.json()["code"]) == (403, "developer_org.namespace_reserved"), reserved
    r = await client.post(
        "/v1/admin/developer-orgs",
        json={"name": "Example Co.", "namespace": namespace, "members": [developer.account_id]},
        headers=operator.headers,
    )
    assert r.status_code == 201, r.text
    org = r.json()
    for overlapping in (namespace, f"{namespace}.clinic", f"com.example{tag}"):
        r = await client.post(
            "/v1/admin/developer-orgs",
            json={"name": "Squat Ltd", "namespace": overlapping, "members": [squatter.account_id]},
            headers=operator.headers,
        )
        assert (r.status_code, r.json()["code"]) == (409, "developer_org.namespace_taken"), overlapping

    # inside the namespace, but not registered yet: refused, nothing stored
    r = await _upload(client, token, app_id, _archive(app_id))
    assert (r.status_code, r.json()["code"]) == (403, "app_id.not_registered"), r.text
    assert not await _stored(client, app_id)
    r = await client.post("/v1/developer/app-ids", json={"app_id": app_id}, headers=token)
    assert r.status_code == 201 and r.json()["status"] == "pending", r.text
    r = await client.post("/v1/developer/app-ids", json={"app_id": app_id}, headers=token)
    assert r.status_code == 200 and r.json()["status"] == "pending", r.text  # asked again: as it stands
    r = await _upload(client, token, app_id, _archive(app_id))
    assert r.json()["extra"] == {"app_id": app_id, "registration": "pending"}, r.text
    pending = await client.get("/v1/admin/app-ids", headers=operator.headers)
    assert any(p["app_id"] == app_id for p in pending.json())

    # a developer may not approve, and an operator approves once
    r = await client.post(
        f"/v1/admin/app-ids/{app_id}/decision",
        json={"decision": "approve", "reason": "mine"},
        headers=developer.headers,
    )
    assert r.status_code == 403
    r = await client.post(
        f"/v1/admin/app-ids/{app_id}/decision",
        json={"decision": "approve", "reason": "example.com verified by DNS TXT"},
        headers=operator.headers,
    )
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    r = await client.post(
        f"/v1/admin/app-ids/{app_id}/decision",
        json={"decision": "reject", "reason": "changed my mind"},
        headers=operator.headers,
    )
    assert (r.status_code, r.json()["code"]) == (409, "app_id.not_pending")

    r = await _upload(client, token, app_id, _archive(app_id))
    assert r.status_code == 201 and r.json()["status"] == "in_review", r.text
    # the squatter, in no organisation with that namespace, still cannot upload under it
    r = await _upload(client, squatter_token, app_id, _archive(app_id))
    assert (r.status_code, r.json()["code"]) == (403, "registry.not_owner")

    assert await _audited(client, f"developer_org:{org['id']}") == ["developer_org.created"]
    assert await _audited(client, f"app_id:{app_id}") == ["app_id.requested", "app_id.approved"]
