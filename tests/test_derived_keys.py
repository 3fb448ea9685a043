"""The kernel derives every key from the master key; each value is pinned, because changing one would make
stored personal data unreadable, blind indexes unfindable, app user ids change, codes and the audit chain fail.

The expected values were computed by the derivations the domains ran themselves before the kernel took them over
(HKDF-SHA256, info `yima/<label>`), for the master key bytes 0..31."""

from __future__ import annotations

import dataclasses

import pytest

from server.credentials.subject_ref import SubjectRefs
from server.platform.runtime.ids import AppUserIds
from server.security import DerivedKeys, FieldCipher

MASTER_KEY = bytes(range(32))

PINNED = {
    "field_encryption": "11fd6de73dd4fbcf770848f2ad71c3ba753622a1f4f907f31f34d16a07fb8bcd",
    "blind_index": "8da1b1250bbf5131b272681c23da2202cbce4851a55bc545257f60258c9138d9",
    "audit_chain": "65b0df4a2d601ee5f5ee21cdbd2eb1d5f28838078b921bc889446fe58afca03d",
    "otp": "caafc4fb04062fefeda7390bbf2348dddd1a74fef16b70642d869dccd8b8f4b0",
    "ankang_subject_ref": "7f72e7b5121306452cc0df822c208a62285698b6ab22a87a1ad8d602b7e818ef",
    "onecard_account_ref": "3ec790a47efcf66cd285b1575317cb9074d3e360af3f7076137b1f98e92b2766",
    "app_user_id": "08f13a6d7289ec95f480e13af4f5ee1001beb82168f75252f417ae95cba4b725",
}


def test_every_derived_key_is_the_one_data_and_tokens_were_made_with():
    keys = DerivedKeys.derive(MASTER_KEY)
    assert {f.name: getattr(keys, f.name).hex() for f in dataclasses.fields(keys)} == PINNED


def test_what_residents_and_apps_hold_stays_the_same():
    keys = DerivedKeys.derive(MASTER_KEY)
    cipher = FieldCipher(keys)
    # a name encrypted before the change still opens; a phone's blind index still finds its account
    stored = bytes.fromhex("013da51fa588179eab0069eaee10d2398f752989cbac4284b1e1fc0f76b2645170df0d")
    assert cipher.decrypt("name", stored) == "张三"
    assert (
        cipher.blind_index("phone", "13800138000").hex()
        == "5abf47e4b7881bf82f789ba6460d4c75f3acf99e339f33be25b63b2f9a98e5d2"
    )
    # an app's stored user ids and the subject reference inside a code shown before the change
    assert AppUserIds(keys.app_user_id).for_app("gov.guangde.bus", 42) == "u_4su5hxhycgdpuec5ncbmr62vo4"
    assert SubjectRefs(keys.ankang_subject_ref).seal(5, 7, 1234).hex() == "eb6dbece363dec1bb766a4404d5058e7"


def test_no_key_is_shown_in_a_repr():
    """A log line or a traceback that prints the keys shows none of them."""
    keys = DerivedKeys.derive(MASTER_KEY)
    shown = repr(keys) + str(keys)
    assert not any(repr(getattr(keys, f.name))[2:-1] in shown for f in dataclasses.fields(keys))


def test_app_user_ids_answered_from_memory_are_the_same_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway asks for the resident's app id on every call; a repeated answer comes from memory and is
    the same id, per app and per resident, and the memory stays bounded."""
    from server.platform.runtime import ids as ids_module

    monkeypatch.setattr(ids_module, "_KNOWN_MAX", 3)
    a, b = AppUserIds(b"k" * 32), AppUserIds(b"j" * 32)
    first = [a.for_app(app, account) for app in ("gov.a", "gov.b") for account in (1, 2)]
    again = [a.for_app(app, account) for app in ("gov.a", "gov.b") for account in (1, 2)]
    assert first == again and len(set(first)) == 4
    assert a.for_app("gov.a", 1) != b.for_app("gov.a", 1)  # another key, another id: nothing shared
    assert len(a._known) <= 3
    assert AppUserIds(b"k" * 32).for_app("gov.b", 2) == first[3]
