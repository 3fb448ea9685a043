"""miniapp.toml validation: good manifests load; each kind of mistake is reported with the field's name."""

from __future__ import annotations

import pytest
from yima_sdk.errors import ManifestError
from yima_sdk.manifest import Limits, parse_manifest

GOOD = 'id = "cn.gov.guangde.library"\nname = "Library"\nversion = "1.2.0"\n'


def test_good_manifest_with_defaults() -> None:
    manifest = parse_manifest(GOOD + 'capabilities = ["storage", "log"]\n[limits]\nworkers = 2\n')
    assert manifest.key == "cn.gov.guangde.library@1.2.0"
    assert manifest.entry == "app:app"
    assert manifest.capabilities == {"storage", "log"}
    assert manifest.limits == Limits(workers=2)


@pytest.mark.parametrize(
    ("text", "field", "hint"),
    [
        ('id = "Library"\nname = "x"\nversion = "1.0.0"\n', "`id`", "reverse-DNS"),
        (GOOD.replace("1.2.0", "1.2"), "`version`", "semantic version"),
        (GOOD + 'entry = "app"\n', "`entry`", "module:attribute"),
        (GOOD + 'capabilities = ["network"]\n', "`capabilities[0]`", "known capabilities"),
        (GOOD + "[limits]\nmemory_mb = 100000\n", "`limits.memory_mb`", "<= 4096"),
        (GOOD + "[limits]\nworkers = 0\n", "`limits.workers`", ">= 1"),
        (GOOD + "[limits]\nthreads = 4\n", "`threads`", "unknown field"),
        ('id = "cn.a.b"\nversion = "1.0.0"\n', "`name`", "missing"),
        (GOOD + "[collections.Bookings]\n", "`collections.Bookings`", "lower-case"),
        (GOOD + '[collections.bookings]\nindexes = ["day", "day"]\n', "`collections.bookings`", "twice"),
        (
            GOOD + '[collections.bookings]\nindexes = [["a", "b", "c", "d", "e"]]\n',
            "`collections.bookings`",
            "1-4 distinct fields",
        ),
        (
            GOOD + '[collections.bookings]\nindexes = ["user-id"]\n',
            "`collections.bookings.indexes[0]`",
            "top-level key",
        ),
        (
            GOOD + '[collections.bookings]\nindex = ["day"]\n',
            "`collections.bookings`",
            "unknown field `index`",
        ),
    ],
)
def test_bad_manifest_names_the_field(text: str, field: str, hint: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text)
    assert caught.value.code == "manifest.invalid"
    assert field in caught.value.message
    assert hint in caught.value.message


PARTNERS = ("341822", "341821", "320481", "320282", "330522", "330523", "341881", "341802")
"""Eight counties' division codes: Guangde and its neighbours."""


def _scopes(*codes: str) -> str:
    return "[scopes]\n" + "".join(
        f'"registered_in:{code}" = "Residents of this county pay half"\n' for code in codes
    )


def test_a_manifest_asks_about_at_most_eight_counties_and_only_real_ones() -> None:
    declared = parse_manifest(GOOD + _scopes(*PARTNERS)).scopes
    assert sorted(declared) == sorted(f"registered_in:{code}" for code in PARTNERS)
    with pytest.raises(ManifestError) as caught:
        parse_manifest(GOOD + _scopes(*PARTNERS, "320412"))
    assert caught.value.code == "manifest.invalid"
    assert "field `scopes`: 9 registered_in: scopes; at most 8" in caught.value.message
    # a province that does not exist, a province, a prefecture: none is a county
    for code in ("991822", "340000", "341800"):
        with pytest.raises(ManifestError) as caught:
            parse_manifest(GOOD + _scopes(code))
        assert f"field `scopes.registered_in:{code}`: unknown scope" in caught.value.message
        assert "a county's 6-digit division code" in caught.value.message


def test_collections_with_their_indexes() -> None:
    manifest = parse_manifest(GOOD + '[collections.bookings]\nindexes = ["day", ["doctor_id", "day"]]\n')
    assert manifest.collections["bookings"].index_fields == {
        "day": ("day",),
        "doctor_id+day": ("doctor_id", "day"),
    }


def test_not_toml_at_all() -> None:
    with pytest.raises(ManifestError, match="not valid TOML"):
        parse_manifest("id = ")


CHECK_IN = (
    GOOD
    + 'capabilities = ["db"]\nscenes = ["clinic"]\n[collections.bookings]\nindexes = [["user_id", "day"]]\n'
)


def _preload(where: str, kind: str = "clinic", collection: str = "bookings") -> str:
    return f'[scan_preload.{kind}]\ntoday = {{ collection = "{collection}", where = {{ {where} }} }}\n'


def test_a_scan_preload_fills_in_the_resident_and_the_day() -> None:
    manifest = parse_manifest(CHECK_IN + _preload('user_id = "$user_id", day = {gte = "$today"}'))
    preload = manifest.scan_preload["clinic"]["today"]
    assert preload.where_at("u_1", "2026-03-02") == {"user_id": "u_1", "day": {"gte": "2026-03-02"}}
    assert preload.where_at(None, "2026-03-02") is None  # a scan naming nobody: not run


@pytest.mark.parametrize(
    ("text", "field", "hint"),
    [
        (CHECK_IN + _preload('user_id = "$user_id"', kind="bus"), "`scan_preload.bus.today`", "`scenes`"),
        (
            CHECK_IN.replace('["db"]', '["storage"]') + _preload('user_id = "$user_id"'),
            "`scan_preload.clinic.today`",
            "declare `db`",
        ),
        (CHECK_IN + _preload('user_id = "$resident"'), "`scan_preload.clinic.today.where`", "'$resident'"),
        (CHECK_IN + _preload('day = "$today"'), "`scan_preload.clinic.today`", "no index"),
        (
            CHECK_IN + _preload('user_id = "$user_id"', collection="visits"),
            "`scan_preload.clinic.today`",
            "not declared under [collections]",
        ),
        (
            CHECK_IN
            + '[scan_preload.clinic]\na = { collection = "bookings" }\nb = { collection = "bookings" }\n'
            + 'c = { collection = "bookings" }\n',
            "`scan_preload.clinic`",
            "at most 2 finds",
        ),
    ],
)
def test_a_scan_preload_is_a_find_the_app_could_make_at_that_scene(text: str, field: str, hint: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text)
    assert field in caught.value.message and hint in caught.value.message, caught.value.message
