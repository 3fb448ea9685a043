"""The trust list: signed, versioned, ETag-cached; partner counties' keys through the operator API; our keys
through `yima keys` rotation and retirement."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from yima_sdk.codes import CredentialError, issue_ankang_code
from yima_sdk.passes import PassClaims, seal_pass
from yima_sdk.trust import TrustList

from server.credentials import repository
from tests.conftest import login, login_with_role
from tests.credentials.helpers import (
    IDENTITY_POINT,
    ankang_payload,
    b64,
    public_key_b64,
    register_terminal,
    scan,
    terminal_token,
    verified_resident,
)

LANGXI = 341821


async def _roots(client):
    info = (await client.get("/v1/trust-list/info")).json()
    return {kid: base64.urlsafe_b64decode(k + "==") for kid, k in info["root_public_keys"].items()}


async def test_trust_list_is_signed_and_cacheable(client):
    r = await client.get("/v1/trust-list")
    assert r.status_code == 200
    trust_list = TrustList.verify(r.content, await _roots(client))
    assert r.headers["etag"] == trust_list.etag
    assert r.headers["x-trust-list-version"] == str(trust_list.version)
    assert any(e.issuer == 341822 for e in trust_list.entries)
    again = await client.get("/v1/trust-list", headers={"if-none-match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


async def test_partner_county_codes_are_accepted_only_inside_their_window(client):
    operator = await login_with_role(client, "operator")
    partner = Ed25519PrivateKey.generate()
    kid = "1a2b3c4d"
    now = datetime.now(UTC)
    before = TrustList.verify((await client.get("/v1/trust-list")).content, await _roots(client))
    r = await client.post(
        "/v1/admin/trust-list/partner-keys",
        headers=operator.headers,
        json={
            "issuer": LANGXI,
            "key_id": kid,
            "public_key": public_key_b64(partner),
            "not_before": (now - timedelta(days=1)).isoformat(),
            "not_after": (now + timedelta(days=1)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    after = TrustList.verify((await client.get("/v1/trust-list")).content, await _roots(client), held=before)
    assert after.version > before.version
    assert after.entry(LANGXI, bytes.fromhex(kid)) is not None
    terminal_id, key = await register_terminal(client, operator, kind="clinic")
    headers = await terminal_token(client, terminal_id, key)
    t = int(time.time())
    valid = issue_ankang_code(partner, bytes.fromhex(kid), LANGXI, b"\x01" * 16, "green", t)
    answer = await scan(client, headers, valid)
    assert answer["result"] == "accept" and "name" not in answer  # we cannot resolve a partner's resident
    outside = issue_ankang_code(
        partner, bytes.fromhex(kid), LANGXI, b"\x02" * 16, "green", t - 3 * 86400, 60000
    )
    assert (await scan(client, headers, outside))["reason"] == "credential.key_not_valid"
    stranger = Ed25519PrivateKey.generate()
    unlisted = issue_ankang_code(stranger, bytes.fromhex("99999999"), LANGXI, b"\x03" * 16, "green", t)
    assert (await scan(client, headers, unlisted))["reason"] == "credential.unknown_key"
    # Removed by the operator: refused from then on.
    r = await client.delete(f"/v1/admin/trust-list/partner-keys/{LANGXI}/{kid}", headers=operator.headers)
    assert r.status_code == 200
    again = issue_ankang_code(partner, bytes.fromhex(kid), LANGXI, b"\x04" * 16, "green", t)
    assert (await scan(client, headers, again))["reason"] == "credential.unknown_key"


async def test_partner_key_api_is_for_operators_and_checks_its_input(client):
    resident = await login(client)
    body = {
        "issuer": LANGXI,
        "key_id": "00000001",
        "public_key": public_key_b64(Ed25519PrivateKey.generate()),
        "not_before": "2024-01-01T00:00:00Z",
        "not_after": "2030-01-01T00:00:00Z",
    }
    assert (
        await client.post("/v1/admin/trust-list/partner-keys", json=body, headers=resident.headers)
    ).status_code == 403
    operator = await login_with_role(client, "operator")
    own = await client.post(
        "/v1/admin/trust-list/partner-keys", json={**body, "issuer": 341822}, headers=operator.headers
    )
    assert own.status_code == 422 and own.json()["code"] == "trust_list.partner_key_invalid"
    backwards = await client.post(
        "/v1/admin/trust-list/partner-keys",
        headers=operator.headers,
        json={**body, "not_after": "2023-01-01T00:00:00Z"},
    )
    assert backwards.status_code == 422 and backwards.json()["code"] == "trust_list.partner_key_invalid"
    assert "not_after" in backwards.json()["detail"]
    # Keys of small order: partner terminals verifying with OpenSSL would accept forgeries under them.
    for weak in ("A" * 43, b64(IDENTITY_POINT)):  # (0, 0...) is of order 4; the identity point
        r = await client.post(
            "/v1/admin/trust-list/partner-keys", json={**body, "public_key": weak}, headers=operator.headers
        )
        assert r.status_code == 422 and r.json()["code"] == "trust_list.partner_key_invalid", r.text
    missing = await client.delete(
        f"/v1/admin/trust-list/partner-keys/{LANGXI}/0badf00d", headers=operator.headers
    )
    assert missing.status_code == 404 and missing.json()["code"] == "trust_list.partner_key_not_found"


async def test_rotation_keeps_shown_codes_valid_and_retirement_withdraws_them(client):
    operator = await login_with_role(client, "operator")
    resident, _ = await verified_resident(client)
    terminal_id, key = await register_terminal(client, operator, kind="clinic")
    headers = await terminal_token(client, terminal_id, key)
    core, credentials = client.app.state.core, client.app.state.credentials
    shown = await ankang_payload(client, resident)
    old_kid = (await core.keys.active("issuer")).kid
    new = (await core.keys.rotate("issuer", actor="test")).key
    await credentials.trust.sync()
    after_rotation = await ankang_payload(client, resident)
    assert after_rotation != shown
    assert (await client.get("/v1/me/codes/ankang", headers=resident.headers)).json()["key_id"] == new.kid
    assert (await scan(client, headers, shown))["result"] == "accept"
    assert (await scan(client, headers, after_rotation))["result"] == "accept"
    await core.keys.retire(old_kid, actor="test")
    await credentials.trust.sync()
    assert (await scan(client, headers, shown))["reason"] == "credential.unknown_key"
    assert (await scan(client, headers, after_rotation))[
        "repeat"
    ] is True  # still valid; same clinic terminal


async def test_a_pass_verifies_only_with_our_own_pass_keys_never_a_partners(client):
    """Passes are issued by our platform's apps and name no issuer, so a partner county's key never signs one, even
    one on the trust list under the very key id of our pass key. The operator API offers partners no `app_pass`,
    the database refuses a row holding it (migration 0350), and a row that holds it anyway (written around the
    constraint) is published without it: with a second issuer holding pass keys on the list, terminals that take
    the one pass issuer on the list admitted no pass at all. Before, pass keys were also looked up by key id across
    issuers: the partner's entry stood for ours, its forgery passed and our own passes failed."""
    operator = await login_with_role(client, "operator")
    core, credentials = client.app.state.core, client.app.state.credentials
    ours = await core.keys.active("miniapp-pass")
    partner = Ed25519PrivateKey.generate()
    now = datetime.now(UTC)
    body = {
        "issuer": LANGXI,
        "key_id": ours.kid,
        "public_key": public_key_b64(partner),
        "not_before": (now - timedelta(days=1)).isoformat(),
        "not_after": (now + timedelta(days=1)).isoformat(),
    }
    refused = await client.post(
        "/v1/admin/trust-list/partner-keys",
        headers=operator.headers,
        json={**body, "credential_types": ["app_pass"]},
    )
    assert refused.status_code == 400, refused.text
    assert (
        await client.post("/v1/admin/trust-list/partner-keys", headers=operator.headers, json=body)
    ).status_code == 201
    widen = "UPDATE partner_issuer_keys SET credential_types = '{ankang_code,app_pass}' WHERE issuer = $1"
    async with core.db.connection() as conn:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(widen, LANGXI)

    # the constraint dropped, the row widened and the list published, in one transaction rolled back after
    owner = await asyncpg.connect(core.settings.database_url)
    undone = owner.transaction()
    await undone.start()
    try:
        await owner.execute("ALTER TABLE partner_issuer_keys DROP CONSTRAINT partner_issuer_keys_no_app_pass")
        await owner.execute(widen, LANGXI)
        assert await credentials.trust.publish_if_changed(owner)
        latest = await repository.latest_trust_list(owner)
        published = TrustList.verify(bytes(latest["envelope"]), await _roots(client))
    finally:
        await undone.rollback()
        await owner.close()
    assert published.entry(LANGXI, bytes.fromhex(ours.kid)).credential_types == {"ankang_code"}
    assert {e.issuer for e in published.entries if "app_pass" in e.credential_types} == {341822}
    listed = TrustList.verify((await client.get("/v1/trust-list")).content, await _roots(client))
    assert "app_pass" not in listed.entry(LANGXI, bytes.fromhex(ours.kid)).credential_types

    def ticket(key: Ed25519PrivateKey) -> str:
        claims = PassClaims(
            p=7, a="gov.guangde.tourism", k="ticket", s=None, d={}, exp=int(time.time()) + 3600, kid=ours.kid
        )
        return seal_pass(claims, key)

    terminal_id, key = await register_terminal(client, operator, kind="scenic")
    headers = await terminal_token(client, terminal_id, key)
    # online: the partner's forgery fails its signature (the key id is our key's); our own pass is checked on (no
    # app is bound to this scene, so the scene refuses it after the signature)
    assert (await scan(client, headers, ticket(partner)))["reason"] == "credential.bad_signature"
    assert (await scan(client, headers, ticket(ours.private_key)))[
        "reason"
    ] == "policy.credential_type_not_allowed"
    # the server's verifier, which offline uploads use too
    with pytest.raises(CredentialError) as refused:
        credentials.trust.verifier.verify(ticket(partner), time.time())
    assert refused.value.code == "credential.bad_signature"
    assert credentials.trust.verifier.verify(ticket(ours.private_key), time.time()).issuer == 341822
