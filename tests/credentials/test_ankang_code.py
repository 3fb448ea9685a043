"""The dynamic Ankang code: who gets one, what it carries (and does not), its QR size and rendered images."""

from __future__ import annotations

import base64
import io
import re

import resvg_py
import zxingcpp
from PIL import Image
from yima_sdk import base45
from yima_sdk.codes import ANKANG_PREFIX, Verifier, decode
from yima_sdk.trust import TrustList

from server.credentials.rendering import qr_version
from tests.conftest import login, login_with_role
from tests.credentials.helpers import ankang_payload, verified_resident


async def test_unverified_resident_gets_a_clear_403(client):
    resident = await login(client)
    r = await client.get("/v1/me/codes/ankang", headers=resident.headers)
    assert r.status_code == 403
    assert r.json()["code"] == "identity.required"


async def test_code_is_signed_compact_and_free_of_personal_data(client):
    resident, id_number = await verified_resident(client, name="王小明")
    r = await client.get("/v1/me/codes/ankang", headers=resident.headers)
    assert r.status_code == 200
    body = r.json()
    assert {"payload", "color", "expires_at", "refresh_after"} <= body.keys()
    assert body["color"] == "green"
    assert body["refresh_after"] < body["expires_at"]
    payload = body["payload"]
    assert payload.startswith(ANKANG_PREFIX)
    raw = base45.decode(payload[len(ANKANG_PREFIX) :])
    for secret in (id_number, resident.phone, "王小明"):
        assert secret.encode() not in raw and secret not in payload
    assert qr_version(payload) <= 6 and body["qr_version"] <= 6
    # Verifiable with nothing but the trust list and its root key.
    info = (await client.get("/v1/trust-list/info")).json()
    envelope = (await client.get("/v1/trust-list")).content
    roots = {kid: base64.urlsafe_b64decode(k + "==") for kid, k in info["root_public_keys"].items()}
    trust_list = TrustList.verify(envelope, roots)
    verified = Verifier(trust_list).verify(payload, decode(payload).issued_at + 1)
    assert verified.colour == "green" and verified.issuer == 341822


async def test_codes_of_one_resident_are_not_linkable_across_periods(client):
    resident, _ = await verified_resident(client)
    ankang = client.app.state.credentials.ankang
    first = decode(await ankang_payload(client, resident))
    real_clock = ankang.clock
    try:
        ankang.clock = lambda: real_clock() + ankang.period_s
        later = decode(await ankang_payload(client, resident))
    finally:
        ankang.clock = real_clock
    assert first.subject_ref != later.subject_ref
    assert ankang.refs.open(first.subject_ref).account_id == resident.account_id
    assert ankang.refs.open(later.subject_ref).account_id == resident.account_id


async def test_rendered_svg_and_png_decode_to_the_same_payload(client):
    resident, _ = await verified_resident(client)
    payload = await ankang_payload(client, resident)
    png = await client.get("/v1/me/codes/ankang.png", headers=resident.headers)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    svg = await client.get("/v1/me/codes/ankang.svg", headers=resident.headers)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    # Only QR symbols are looked for, as a terminal's scanner does: with every format on, zxing-cpp 3
    # now and then also reads a few modules of the QR as a short ITF or Codabar barcode.
    decoded_png = zxingcpp.read_barcodes(
        Image.open(io.BytesIO(png.content)), formats=zxingcpp.BarcodeFormat.QRCode
    )
    # Rasterised exactly as served: the size is declared in pixels (resvg refuses millimetres), the same as the
    # PNG's, over a viewBox so that it scales.
    png_width = Image.open(io.BytesIO(png.content)).width
    assert re.match(rf'<svg width="{png_width}" height="{png_width}" [^>]*viewBox="0 0 ', svg.text)
    rendered = bytes(resvg_py.svg_to_bytes(svg_string=svg.text))
    assert Image.open(io.BytesIO(rendered)).size == (png_width, png_width)
    decoded_svg = zxingcpp.read_barcodes(
        Image.open(io.BytesIO(rendered)).convert("L"), formats=zxingcpp.BarcodeFormat.QRCode
    )
    # Both images were rendered within one refresh period, so they carry the code the JSON route gave.
    assert [b.text for b in decoded_png] == [payload]
    assert [b.text for b in decoded_svg] == [payload]
    modules = Image.open(io.BytesIO(png.content)).width // 8 - 2 * 4  # box size 8, quiet zone 4
    assert (modules - 17) // 4 <= 6  # a version-v symbol is 4v + 17 modules wide


async def test_colour_change_reaches_the_next_code_and_the_residents_history(client):
    resident, id_number = await verified_resident(client)
    authority = await login_with_role(client, "health_authority")
    r = await client.post(
        "/v1/authority/health-status",
        json={"id_number": id_number, "color": "yellow", "reason": "close contact"},
        headers=authority.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["account_known"] is True
    body = (await client.get("/v1/me/codes/ankang", headers=resident.headers)).json()
    assert body["color"] == "yellow" and decode(body["payload"]).colour == "yellow"
    mine = (await client.get("/v1/me/health-status", headers=resident.headers)).json()
    assert mine["color"] == "yellow"
    assert [h["color"] for h in mine["history"]] == ["yellow"]
    assert mine["history"][0]["reason"] == "close contact"


async def test_revoking_my_codes_needs_no_body_every_field_has_a_default(client):
    resident, _ = await verified_resident(client)
    old = await ankang_payload(client, resident)
    r = await client.post("/v1/me/codes/ankang/revoke", headers=resident.headers)
    assert r.status_code == 200, r.text
    assert r.json()["revoked"] >= 1
    assert await ankang_payload(client, resident) != old
    async with client.app.state.core.db.connection() as conn:
        details = await conn.fetchval(
            "SELECT details FROM audit_log WHERE target = $1 ORDER BY seq DESC LIMIT 1",
            f"account:{resident.account_id}",
        )
    assert details["reason"] == "lost_phone"  # the default reason
    # A body is still checked: an unknown field is refused, not ignored.
    bad = await client.post("/v1/me/codes/ankang/revoke", json={"why": "x"}, headers=resident.headers)
    assert bad.status_code == 400 and bad.json()["code"] == "request.invalid"
