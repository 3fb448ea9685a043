"""Squatting another resident's social security card (issue 16, point 11): a one-card links only the card issued to
the caller's verified identity, and the answer is the same whether the number is someone's card or nobody's."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import AppClient
from tests.onecard.helpers import card_number, id_number, issue_card, resident_with_card, verified_with_id
from tests.test_cli import YIMA, _env


async def test_linking_someone_elses_card_is_refused_like_an_unknown_card(client: AppClient):
    alice = await resident_with_card(client)
    mallory, _ = await verified_with_id(client)
    taken = await client.post(
        "/v1/me/onecard", json={"ss_card_number": alice.card_number}, headers=mallory.headers
    )
    unknown = await client.post(
        "/v1/me/onecard", json={"ss_card_number": card_number()}, headers=mallory.headers
    )
    # No oracle: the status, code and wording are the same for Alice's card and for a number nobody holds.
    assert (taken.status_code, taken.json()["code"]) == (422, "onecard.card_not_yours")
    assert (unknown.status_code, unknown.json()["code"], unknown.json()["detail"]) == (
        taken.status_code,
        taken.json()["code"],
        taken.json()["detail"],
    )
    assert (await client.get("/v1/me/onecard", headers=mallory.headers)).json()["code"] == "onecard.not_open"


async def test_card_links_once_issued_to_the_verified_identity(client: AppClient):
    resident, id_number = await verified_with_id(client)
    number = card_number()
    early = await client.post("/v1/me/onecard", json={"ss_card_number": number}, headers=resident.headers)
    assert early.json()["code"] == "onecard.card_not_yours"  # not in the issuer's record yet
    number = await issue_card(client, id_number)
    r = await client.post("/v1/me/onecard", json={"ss_card_number": number}, headers=resident.headers)
    assert r.status_code == 200, r.text


def test_issuer_file_is_imported_all_or_nothing(database_url: str, master_key: str, tmp_path: Path):
    good, bad = tmp_path / "cards.csv", tmp_path / "bad.csv"
    good.write_text(f"{id_number()},{card_number()}\n{id_number()},{card_number()}\n")
    bad.write_text(f"{id_number()},{card_number()}\n{id_number()},A1\n")
    env = _env(YIMA_DATABASE_URL=database_url, YIMA_MASTER_KEY=master_key, YIMA_MODE="test")
    ok = subprocess.run(
        [YIMA, "onecard", "import-cards", str(good)], env=env, capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0 and "recorded 2 issued card(s)" in ok.stdout, ok.stderr
    refused = subprocess.run(
        [YIMA, "onecard", "import-cards", str(bad)], env=env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2 and "line 2" in refused.stderr and "nothing recorded" in refused.stderr
