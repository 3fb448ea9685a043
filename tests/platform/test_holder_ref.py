"""ScanData.holder_ref: a partner county's scanned credential's pseudonym, app-scoped (server/platform/runtime/ids.py
over server/terminals/events.holder_of): the same for one credential in one app, different in every other app and
for another credential, never the serial or subject ref itself, and none for our own residents' codes."""

from __future__ import annotations

from yima_sdk.codes import VerifiedCode

from server.platform.runtime.ids import AppUserIds
from server.terminals.events import holder_of

OURS, CHANGXING = 341822, 330522
SERIAL = bytes.fromhex("0a" * 16)


def code(kind: str, issuer: int, *, serial: bytes | None = None, ref: bytes = b"\x07" * 16) -> VerifiedCode:
    return VerifiedCode(
        kind=kind,  # type: ignore[arg-type]
        issuer=issuer,
        key_id=b"\x01\x02\x03\x04",
        subject_ref=ref,
        colour=None,
        issued_at=0,
        expires_at=1,
        replay_key=b"r",
        certificate_serial=serial,
    )


def test_two_apps_get_different_holder_refs_for_the_same_ride_code() -> None:
    ids = AppUserIds(b"k" * 32)
    holder = holder_of(code("ride_code", CHANGXING, serial=SERIAL), OURS)
    assert holder is not None
    bus, clinic = ids.holder_for("gov.guangde.bus", holder), ids.holder_for("gov.guangde.clinic", holder)
    assert bus != clinic
    assert bus.startswith("h_") and len(bus) == 28
    # stable for the credential in one app: the next code the same phone shows (a new counter) is the same holder
    again = holder_of(code("ride_code", CHANGXING, serial=SERIAL, ref=b"\x09" * 16), OURS)
    assert again is not None and ids.holder_for("gov.guangde.bus", again) == bus
    # another certificate, another key: another pseudonym; neither carries the serial
    other = holder_of(code("ride_code", CHANGXING, serial=b"\x0b" * 16), OURS)
    assert other is not None and ids.holder_for("gov.guangde.bus", other) != bus
    assert AppUserIds(b"x" * 32).holder_for("gov.guangde.bus", holder) != bus
    assert SERIAL.hex() not in bus and SERIAL.hex()[:8] not in clinic


def test_partner_ankang_codes_by_subject_ref_and_none_for_our_own_codes() -> None:
    ids = AppUserIds(b"k" * 32)
    ankang = holder_of(code("ankang_code", CHANGXING, ref=b"\x05" * 16), OURS)
    assert ankang is not None and ids.holder_for("a", ankang) != ids.holder_for("b", ankang)
    assert ids.holder_for("a", ankang) != ids.for_app("a", 5)
    assert holder_of(code("ride_code", OURS, serial=SERIAL), OURS) is None  # our residents have user ids
    assert holder_of(code("ankang_code", OURS), OURS) is None
    assert holder_of(code("app_pass", CHANGXING, ref=b""), OURS) is None
    assert holder_of(None, OURS) is None
