"""Attacks with look-alike identifiers (issue 16, point 9): every identifier is ASCII, NFKC-normalised first where a
resident types it, and matched whole (no trailing newline)."""

from __future__ import annotations

import secrets

import pytest
from yima_sdk.manifest import ManifestError, parse_manifest

from server.onecard.ss_card import CardNumberError, normalise_card_number
from tests.conftest import AppClient, login, random_phone, valid_id_number

FULL_WIDTH = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")


def _seq() -> str:
    return f"{secrets.randbelow(1000):03d}"


async def test_full_width_digit_in_id_number_is_the_same_person_not_a_second_account(client: AppClient):
    id_number = valid_id_number(birth="19850302", seq=_seq())
    first, second = await login(client), await login(client)
    r = await client.put(
        "/v1/me/identity", json={"name": "张三", "id_number": id_number}, headers=first.headers
    )
    assert r.status_code == 200, r.text
    look_alike = id_number[0].translate(FULL_WIDTH) + id_number[1:]
    r = await client.put(
        "/v1/me/identity", json={"name": "张三", "id_number": look_alike}, headers=second.headers
    )
    assert (r.status_code, r.json()["code"]) == (409, "identity.id_number_taken")


async def test_all_full_width_id_number_is_stored_as_its_ascii_form(client: AppClient):
    id_number = valid_id_number(birth="19790911", seq=_seq())
    resident = await login(client)
    r = await client.put(
        "/v1/me/identity",
        json={"name": "李四", "id_number": id_number.translate(FULL_WIDTH)},
        headers=resident.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["real_name"]["id_number"].endswith(id_number[-4:])


async def test_arabic_indic_digits_in_id_number_are_refused(client: AppClient):
    id_number = valid_id_number(seq=_seq())
    arabic = id_number[:17].translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")) + id_number[17]
    resident = await login(client)
    r = await client.put(
        "/v1/me/identity", json={"name": "王五", "id_number": arabic}, headers=resident.headers
    )
    assert (r.status_code, r.json()["code"]) == (422, "identity.id_number_invalid")


@pytest.mark.parametrize(
    "variant",
    [
        lambda p: p + "\n",
        lambda p: p[0].translate(FULL_WIDTH) + p[1:],
        lambda p: p.translate(FULL_WIDTH),
        lambda p: p[:3] + "\u200b" + p[3:],
    ],
    ids=["trailing_newline", "one_full_width_digit", "all_full_width", "zero_width_space"],
)
async def test_phone_look_alike_does_not_get_its_own_otp_budget(client: AppClient, variant):
    phone = random_phone()
    for path, body in (
        ("/v1/auth/otp", {"phone": variant(phone)}),
        ("/v1/auth/token", {"phone": variant(phone), "code": "123456"}),
    ):
        r = await client.post(path, json=body)
        assert (r.status_code, r.json()["code"]) == (400, "request.invalid"), (path, r.text)


async def test_otp_code_with_full_width_digits_or_newline_is_refused(client: AppClient):
    for code in ("１２３４５６", "123456\n"):
        r = await client.post("/v1/auth/token", json={"phone": random_phone(), "code": code})
        assert (r.status_code, r.json()["code"]) == (400, "request.invalid"), code


def test_card_number_look_alikes_normalise_or_are_refused():
    assert normalise_card_number("Ａ１２３４５６７８") == "A12345678"
    for bad in ("A12345678\n\x00", "A١٢٣٤٥٦٧٨", "А12345678"):  # the last starts with a Cyrillic А
        with pytest.raises(CardNumberError):
            normalise_card_number(bad)


_MANIFEST = 'id = "{id}"\nname = "x"\nversion = "{version}"\nentry = "app:app"\n'


@pytest.mark.parametrize(
    ("app_id", "version"),
    [
        ("gov.guangde.bus\n", "1.0.0"),
        ("gov.guangde.bus", "１.0.0"),
        ("gov.guangde.bus", "1.0.0\n"),
        ("gov.guangdе.bus", "1.0.0"),  # Cyrillic е
        ("gov.guangde.bus", "1.٠.0"),
    ],
    ids=[
        "app_id_newline",
        "version_full_width",
        "version_newline",
        "app_id_cyrillic",
        "version_arabic_digit",
    ],
)
def test_manifest_look_alike_app_id_or_version_is_refused(app_id: str, version: str):
    text = _MANIFEST.format(id=app_id.replace("\n", "\\n"), version=version.replace("\n", "\\n"))
    with pytest.raises(ManifestError):
        parse_manifest(text)
