"""An offline gate's verdict travels with its upload, through a real `yima dev` (its own): a ticket paid after the
gate of 太极洞 synced is refused offline (`yima terminal scan --offline --gate gate`), its upload (`yima terminal
upload`) does not mark it entered, and an online scan at the gate still lets the visitor in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e._real import eventually, private_folder
from tests.e2e.test_real_tourism import (
    API,
    Dev,
    all_day_slot,
    live,
    pay,
    paying_resident,
    running_dev,
    senior,
    staff,
)
from tests.e2e.test_real_tourism_offline_gates import SPOT, admit, code, gate, gate_key_file


@pytest.fixture(scope="module")
def dev() -> Iterator[Dev]:
    yield from running_dev()


def test_a_ticket_paid_after_the_gates_sync_is_refused_offline_and_still_enters_online(dev: Dev) -> None:
    """The offline gate's verdict travels with its upload: a visitor it refused (their ticket was paid after its
    last sync, so its list holds nothing for them) is not marked entered by the upload, and an online gate still
    lets them in."""
    slot = all_day_slot(dev, SPOT, 20)
    opener, late = senior(dev), paying_resident(dev, 8000)
    assert opener.post(f"{API}/slots/{slot}/reserve").status_code == 201
    r = late.post(f"{API}/slots/{slot}/reserve")
    assert r.status_code == 201 and "gates" not in r.json(), r.text  # unpaid: not on the gate's list yet
    bureau = staff(dev, "bureau", None)
    before = live(bureau, SPOT)["admitted"]

    with private_folder() as folder:
        key_file = gate_key_file(dev, folder)
        assert admit(dev, key_file, code(opener), online=True)["admit"] is True  # the gate syncs now
        pay(late, r.json()["payment_id"])  # after the sync: the gate cannot know
        answer = admit(dev, key_file, code(late))
        assert (answer["result"], answer["admit"]) == ("accept", False), answer
        assert answer["lines"] == ["未持票 Nothing held for this code now", "list.no_entry"]

        assert gate(dev, key_file, "upload", online=True) == {"uploaded": 2}
        eventually(lambda: live(bureau, SPOT)["admitted"] == before + 1, limit_s=30)
        assert [t["entered"] for t in late.get(f"{API}/tickets").json()["tickets"]] == [0]

        online = gate(dev, key_file, "scan", code(late), online=True)["miniapp"]
        assert (online["admit"], online["lines"][0]) == (True, "请入园 Welcome"), online
        assert [t["entered"] for t in late.get(f"{API}/tickets").json()["tickets"]] == [1]
        assert live(bureau, SPOT)["admitted"] == before + 2
