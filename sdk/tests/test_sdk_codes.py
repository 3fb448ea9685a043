"""Credential formats and the Verifier: round trips, QR size limits, refusal codes, mutation robustness."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

import pytest
import qrcode
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sdk_world import GUANGDE, IDENTITY_POINT, LANGXI, NON_CANONICAL_POINT, NOW, World
from yima_sdk import base45
from yima_sdk.codes import (
    AnkangCode,
    CredentialError,
    RideCode,
    VerifiedCode,
    Verifier,
    decode,
    decode_device_certificate,
    decode_many,
    issue_ankang_code,
    issue_device_certificate,
    public_key_valid,
    ride_certificate_text,
)
from yima_sdk.holder import Holder
from yima_sdk.trust import RevocationSet


def ankang(world: World, **overrides: object) -> str:
    args: dict[str, object] = {
        "signing_key": world.guangde,
        "key_id": world.guangde_key_id,
        "issuer": GUANGDE,
        "subject_ref": bytes(range(16)),
        "colour": "green",
        "issued_at": NOW,
        "validity": 120,
    }
    args.update(overrides)
    return issue_ankang_code(**args)  # type: ignore[arg-type]


def qr_version(payload: str) -> int:
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(payload)
    qr.make(fit=True)
    return int(qr.version)


def rejected(verifier: Verifier, payload: str, now: float = NOW, **kw: object) -> str:
    with pytest.raises(CredentialError) as info:
        verifier.verify(payload, now, **kw)  # type: ignore[arg-type]
    return info.value.code


def test_ankang_code_round_trip(world: World) -> None:
    payload = ankang(world, colour="yellow", subject_ref=b"\xab" * 16)
    assert payload.startswith("YA:")
    code = decode(payload)
    assert isinstance(code, AnkangCode)
    assert (code.issuer, code.key_id, code.subject_ref, code.colour) == (
        GUANGDE,
        world.guangde_key_id,
        b"\xab" * 16,
        "yellow",
    )
    assert (code.issued_at, code.expires_at) == (NOW, NOW + 120)


def test_ride_code_round_trip(world: World) -> None:
    holder = world.holder(max_uses=9, max_amount_fen=1234)
    code = decode(holder.ride_code(NOW, counter=7))
    assert isinstance(code, RideCode)
    cert = code.certificate
    assert (code.timestamp, code.counter) == (NOW, 7)
    assert cert.device_public_key == holder.device_public_key
    assert (cert.max_offline_uses, cert.max_offline_amount_fen, cert.issuer) == (9, 1234, GUANGDE)
    assert cert.expires_at == NOW - 3600 + 720 * 3600
    assert decode_device_certificate(cert.raw) == cert


def test_qr_sizes_and_a_real_decoder_reads_them_back(world: World) -> None:
    payloads = {
        "ankang": (ankang(world, colour="red", subject_ref=b"\xff" * 16, validity=65535), 6),
        "ride": (world.holder(max_uses=65535, max_amount_fen=0xFFFFFF).ride_code(NOW, counter=65535), 10),
    }
    for payload, limit in payloads.values():
        assert qr_version(payload) <= limit
        qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=4)
        qr.add_data(payload)
        qr.make(fit=True)
        assert qr.data_list[0].mode == qrcode.util.MODE_ALPHA_NUM
        image = qr.make_image().get_image().convert("L")
        # Only QR symbols are looked for, as a terminal's scanner does: with every format on, zxing-cpp 3
        # now and then also reads a few modules of the QR as a short ITF or Codabar barcode.
        (read,) = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
        assert read.text == payload


def test_verifier_accepts_and_reports(world: World) -> None:
    verifier = Verifier(world.trust_list())
    verified = verifier.verify(ankang(world, colour="red"), NOW + 10)
    assert (verified.kind, verified.colour, verified.issuer, verified.expires_at) == (
        "ankang_code",
        "red",
        GUANGDE,
        NOW + 120,
    )
    # The same code has the same replay key; another issue time is another instance.
    assert verifier.verify(ankang(world, colour="red"), NOW).replay_key == verified.replay_key
    assert verifier.verify(ankang(world, issued_at=NOW + 1), NOW).replay_key != verified.replay_key


def test_time_window_with_skew(world: World) -> None:
    verifier = Verifier(world.trust_list(), clock_skew_s=30)
    payload = ankang(world)
    assert verifier.verify(payload, NOW + 120 + 30).kind == "ankang_code"
    assert rejected(verifier, payload, NOW + 151) == "credential.expired"
    assert verifier.verify(payload, NOW - 30).kind == "ankang_code"
    assert rejected(verifier, payload, NOW - 31) == "credential.not_yet_valid"


def test_unknown_keys_and_types(world: World) -> None:
    verifier = Verifier(world.trust_list())
    stranger = Ed25519PrivateKey.generate()
    assert rejected(verifier, ankang(world, key_id=b"zzzz")) == "credential.unknown_key"
    assert rejected(verifier, ankang(world, issuer=330522)) == "credential.unknown_key"
    assert rejected(verifier, ankang(world, signing_key=stranger)) == "credential.bad_signature"
    # Langxi may issue Ankang codes but not device certificates.
    assert (
        verifier.verify(
            ankang(world, signing_key=world.langxi, key_id=world.langxi_key_id, issuer=LANGXI), NOW
        ).issuer
        == LANGXI
    )
    holder = world.holder()
    from yima_sdk.codes import issue_device_certificate

    holder.install_certificate(
        issue_device_certificate(
            world.langxi,
            world.langxi_key_id,
            LANGXI,
            os.urandom(16),
            holder.device_public_key,
            NOW,
            24,
            5,
            100,
        )
    )
    assert rejected(verifier, holder.ride_code(NOW)) == "credential.unknown_key"


def test_key_validity_window_is_checked_at_issue_time(world: World) -> None:
    verifier = Verifier(world.trust_list())
    # Langxi's key is valid for one day around NOW: a code issued two days later is refused.
    late = ankang(
        world, signing_key=world.langxi, key_id=world.langxi_key_id, issuer=LANGXI, issued_at=NOW + 2 * 86400
    )
    assert rejected(verifier, late, NOW + 2 * 86400) == "credential.key_not_valid"


def test_ride_code_rules(world: World) -> None:
    verifier = Verifier(world.trust_list(), clock_skew_s=5, ride_window_s=60)
    holder = world.holder(max_uses=3, lifetime_h=24)
    verified = verifier.verify(holder.ride_code(NOW, counter=3), NOW + 10)
    assert (verified.kind, verified.counter, verified.subject_ref) == (
        "ride_code",
        3,
        holder.certificate.account_ref,  # type: ignore[union-attr]
    )
    assert rejected(verifier, holder.ride_code(NOW, counter=4)) == "credential.offline_limit_exceeded"
    assert rejected(verifier, holder.ride_code(NOW - 66, counter=1)) == "credential.stale_timestamp"
    assert verifier.verify(holder.ride_code(NOW - 65, counter=1), NOW).kind == "ride_code"
    assert rejected(verifier, holder.ride_code(NOW + 6, counter=1)) == "credential.not_yet_valid"
    expired_at = NOW - 3600 + 24 * 3600 + 6
    assert (
        rejected(verifier, holder.ride_code(expired_at, counter=2), expired_at)
        == "credential.device_certificate_expired"
    )
    # A device signing with a key the certificate does not name.
    thief = world.holder()
    thief_code = decode(thief.ride_code(NOW))
    assert isinstance(thief_code, RideCode)
    forged = Ed25519PrivateKey.generate()
    from yima_sdk.codes import sign_ride_code

    assert (
        rejected(verifier, sign_ride_code(forged, thief_code.certificate.raw, NOW, 1))
        == "credential.bad_signature"
    )


def test_revocation(world: World) -> None:
    verifier = Verifier(world.trust_list())
    holder = world.holder()
    cert = holder.certificate
    assert cert is not None
    revocations = RevocationSet()
    payload = ankang(world, subject_ref=b"\x01" * 16)
    ride = holder.ride_code(NOW)
    assert verifier.verify(payload, NOW, revocations=revocations)
    revocations.apply_delta(GUANGDE, 0, 1, [("subject", b"\x01" * 16)])
    assert rejected(verifier, payload, revocations=revocations) == "credential.revoked"
    assert verifier.verify(ride, NOW, revocations=revocations).kind == "ride_code"
    revocations.apply_delta(GUANGDE, 1, 2, [("device_certificate", cert.serial)])
    assert rejected(verifier, ride, revocations=revocations) == "credential.revoked"


def _with_signature_tail_changed(payload: str) -> str:
    """The payload with the Base45 text of its signature's last bytes replaced: a forgery of the same code."""
    return payload[:-6] + ("000000" if not payload.endswith("000000") else "111111")


def test_verify_many_answers_each_code_as_verify_does(world: World) -> None:
    holder = world.holder(max_uses=3)
    revoked_holder = world.holder()
    cert = revoked_holder.certificate
    assert cert is not None
    revocations = RevocationSet()
    revocations.apply_delta(GUANGDE, 0, 1, [("subject", b"\x01" * 16), ("device_certificate", cert.serial)])
    valid_ride = holder.ride_code(NOW)
    forged_ride = _with_signature_tail_changed(valid_ride)
    # a certificate for this phone's key signed by someone else, under the issuer's key id
    forger = Holder.generate()
    forger.install_certificate(
        issue_device_certificate(
            Ed25519PrivateKey.generate(),
            world.guangde_key_id,
            GUANGDE,
            os.urandom(16),
            forger.device_public_key,
            NOW - 3600,
            720,
            100,
            5000,
        )
    )
    langxi_late = ankang(
        world, signing_key=world.langxi, key_id=world.langxi_key_id, issuer=LANGXI, issued_at=NOW + 2 * 86400
    )
    items = [
        (ankang(world), NOW),
        (ankang(world, issued_at=NOW - 600), NOW),  # expired
        (ankang(world, subject_ref=b"\x01" * 16), NOW),  # revoked subject
        (ankang(world, signing_key=Ed25519PrivateKey.generate()), NOW),  # forged signature
        ("YA:BB8", NOW),  # malformed
        ("YA:bb8", NOW),  # outside the Base45 alphabet
        ("not a code", NOW),
        (forged_ride, NOW),  # before the valid one: the certificate is checked, not yet cached
        (valid_ride, NOW),
        (forged_ride, NOW),  # its certificate now cached: the device signature is still checked
        (forger.ride_code(NOW), NOW),
        (valid_ride, NOW + 400),  # stale timestamp
        (holder.ride_code(NOW, counter=4), NOW),  # past the certificate's use limit
        (revoked_holder.ride_code(NOW), NOW),
        (ankang(world, issued_at=NOW + 100), NOW),  # not yet valid, at its own time
        # issued after Langxi's key expired: refused for the key window, but a forgery for its signature
        (langxi_late, NOW + 2 * 86400),
        (_with_signature_tail_changed(langxi_late), NOW + 2 * 86400),
    ]

    def one_by_one(verifier: Verifier) -> list[object]:
        out: list[object] = []
        for payload, now in items:
            try:
                out.append(verifier.verify(payload, now, revocations=revocations))
            except CredentialError as exc:
                out.append(exc.code)
        return out

    expected = one_by_one(Verifier(world.trust_list()))
    answers = Verifier(world.trust_list()).verify_many(items, revocations=revocations)
    got = [a.code if isinstance(a, CredentialError) else a for a in answers]
    assert got == expected
    assert [a if isinstance(a, str) else a.kind for a in got] == [
        "ankang_code",
        "credential.expired",
        "credential.revoked",
        "credential.bad_signature",
        "credential.malformed",
        "credential.malformed",
        "credential.malformed",
        "credential.bad_signature",
        "ride_code",
        "credential.bad_signature",
        "credential.bad_signature",
        "credential.stale_timestamp",
        "credential.offline_limit_exceeded",
        "credential.revoked",
        "credential.not_yet_valid",
        "credential.key_not_valid",
        "credential.bad_signature",
    ]


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "YA:",
        "YA",
        "XX:BB8",
        "ya:BB8",
        "YA:BB8",
        "YR:BB8",
        "YA:GGW",
        "YA:" + "0" * 2000,
    ],
)
def test_malformed_payloads(world: World, payload: str) -> None:
    assert rejected(Verifier(world.trust_list()), payload) == "credential.malformed"


def test_unknown_version_type_alg_and_trailing_bytes_are_malformed(world: World) -> None:
    raw = base45.decode(ankang(world)[3:])
    verifier = Verifier(world.trust_list())
    for bad in (
        bytes([0x21]) + raw[1:],  # format version 2
        bytes([0x12]) + raw[1:],  # a device certificate header behind the Ankang prefix
        raw[:1] + bytes([2]) + raw[2:],  # SM2: reserved, not implemented
        raw + b"\x00",
        raw[:-1],
    ):
        assert rejected(verifier, "YA:" + base45.encode(bad)) == "credential.malformed"


_MUTATION_SETTINGS = settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))


@st.composite
def mutated(draw: st.DrawFn, payload: str) -> str:
    raw = bytearray(base45.decode(payload[3:]))
    action = draw(st.sampled_from(["flip", "truncate", "extend", "text"]))
    if action == "flip":
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(raw) - 1))
            raw[i] ^= draw(st.integers(1, 255))
    elif action == "truncate":
        del raw[draw(st.integers(0, len(raw) - 1)) :]
    elif action == "extend":
        raw += draw(st.binary(min_size=1, max_size=40))
    else:
        text = list(payload)
        i = draw(st.integers(0, len(text) - 1))
        text[i] = draw(st.characters(codec="utf-8"))
        candidate = "".join(text)
        if candidate == payload:
            candidate += "0"
        return candidate
    return payload[:3] + base45.encode(bytes(raw))


_WORLD = World()
_ANKANG = ankang(_WORLD)
_RIDE = _WORLD.holder().ride_code(NOW)
_VERIFIER = Verifier(_WORLD.trust_list())
_WARM_VERIFIER = Verifier(_WORLD.trust_list())
# Verifying the ride code caches its certificate: later ride codes with it are decoded around it.
_WARM_VERIFIER.verify(_RIDE, NOW)
_KNOWN_CERTIFICATES = {ride_certificate_text(_RIDE): decode(_RIDE).certificate}  # type: ignore[union-attr]


@st.composite
def changed_around_certificate(draw: st.DrawFn, payload: str) -> str:
    """`payload` with one to three characters outside its certificate's text replaced."""
    certificate_text = ride_certificate_text(payload)
    at = payload.index(certificate_text)
    outside = [i for i in range(len(payload)) if not at <= i < at + len(certificate_text)]
    text = list(payload)
    for _ in range(draw(st.integers(1, 3))):
        text[draw(st.sampled_from(outside))] = draw(
            st.one_of(st.sampled_from(base45.ALPHABET), st.characters(codec="utf-8"))
        )
    return "".join(text)


def _decoded(decode_one: Callable[[], object]) -> object:
    try:
        return decode_one()
    except CredentialError as exc:
        return exc.code


@_MUTATION_SETTINGS
@given(mutated(_ANKANG))
def test_mutated_ankang_codes_never_verify(payload: str) -> None:
    assume(payload != _ANKANG)  # flips can cancel out
    with pytest.raises(CredentialError):
        _VERIFIER.verify(payload, NOW)


@_MUTATION_SETTINGS
@given(st.one_of(mutated(_RIDE), changed_around_certificate(_RIDE)))
def test_mutated_ride_codes_never_verify(payload: str) -> None:
    assume(payload != _RIDE)
    for verifier in (_VERIFIER, _WARM_VERIFIER):  # the certificate not cached, and cached
        with pytest.raises(CredentialError):
            verifier.verify(payload, NOW)
    assert not isinstance(_WARM_VERIFIER.verify_many([(payload, NOW)])[0], VerifiedCode)


@_MUTATION_SETTINGS
@given(st.one_of(mutated(_RIDE), changed_around_certificate(_RIDE)))
def test_a_ride_code_decodes_around_a_known_certificate_as_in_full(payload: str) -> None:
    in_full = _decoded(lambda: decode(payload))
    assert _decoded(lambda: decode(payload, _KNOWN_CERTIFICATES)) == in_full
    many = decode_many([payload, _RIDE], _KNOWN_CERTIFICATES)
    assert [a.code if isinstance(a, CredentialError) else a for a in many] == [in_full, decode(_RIDE)]


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=400))
def test_arbitrary_text_only_raises_credential_error(payload: str) -> None:
    with pytest.raises(CredentialError):
        _VERIFIER.verify(payload, NOW)


def test_a_device_certificate_is_issued_only_for_a_real_public_key(world: World) -> None:
    for key in (IDENTITY_POINT, NON_CANONICAL_POINT, bytes(31)):
        assert not public_key_valid(key)
        with pytest.raises(ValueError, match="valid Ed25519 public key"):
            issue_device_certificate(
                world.guangde, world.guangde_key_id, GUANGDE, os.urandom(16), key, NOW, 24, 5, 100
            )
    assert public_key_valid(Holder.generate().device_public_key)


# A pool of codes for groups: valid and refused ones of every kind, under several phones' certificates.
_GROUP_HOLDERS = [_WORLD.holder(max_uses=5), _WORLD.holder(), _WORLD.holder()]
_GROUP_REVOKED_HOLDER = _WORLD.holder()
_GROUP_REVOCATIONS = RevocationSet()
_GROUP_REVOCATIONS.apply_delta(
    GUANGDE,
    0,
    1,
    [("subject", b"\x02" * 16), ("device_certificate", _GROUP_REVOKED_HOLDER.certificate.serial)],  # type: ignore[union-attr]
)
_GROUP_POOL = [
    *(ankang(_WORLD, subject_ref=os.urandom(16)) for _ in range(3)),
    ankang(_WORLD, issued_at=NOW - 600),  # expired
    ankang(_WORLD, subject_ref=b"\x02" * 16),  # revoked
    ankang(_WORLD, signing_key=Ed25519PrivateKey.generate()),  # forged
    ankang(_WORLD, signing_key=_WORLD.langxi, key_id=_WORLD.langxi_key_id, issuer=LANGXI),
    *(holder.ride_code(NOW, counter=counter) for holder in _GROUP_HOLDERS for counter in (1, 2, 6)),
    _with_signature_tail_changed(_GROUP_HOLDERS[0].ride_code(NOW)),
    _GROUP_REVOKED_HOLDER.ride_code(NOW),
    "YA:BB8",
    "not a code",
]


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(
        st.tuples(
            st.one_of(
                st.sampled_from(_GROUP_POOL),
                mutated(_ANKANG),
                mutated(_GROUP_HOLDERS[1].ride_code(NOW)),
                changed_around_certificate(_GROUP_HOLDERS[2].ride_code(NOW)),
            ),
            st.sampled_from([NOW, NOW + 100, NOW + 400, NOW - 200]),
        ),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from([1, 2, 4096]),
)
def test_a_group_is_answered_code_by_code_as_verify_answers(
    items: list[tuple[str, float]], cache_size: int
) -> None:
    """Groups mixing every shape: a group whose Base45 text does not decode as a whole, a certificate first
    seen inside the group and then again, a certificate cache that fills up and is emptied mid-group."""

    def answer(verifier: Verifier, payload: str, now: float) -> object:
        try:
            return verifier.verify(payload, now, revocations=_GROUP_REVOCATIONS)
        except CredentialError as exc:
            return str(exc)

    one_by_one = Verifier(_WORLD.trust_list(), certificate_cache_size=cache_size)
    expected = [answer(one_by_one, payload, now) for payload, now in items]
    grouped = Verifier(_WORLD.trust_list(), certificate_cache_size=cache_size)
    got = [
        str(a) if isinstance(a, CredentialError) else a
        for a in grouped.verify_many(items, revocations=_GROUP_REVOCATIONS)
    ]
    assert got == expected
    # and again, now that the group left certificates in the cache
    assert [answer(grouped, payload, now) for payload, now in items] == expected


def _signed_ankang(world: World, **fields: int) -> str:
    """An Ankang code with the header fields given (version|type, alg, colour, validity), properly signed:
    only the format checks can refuse it."""
    values = {"head": 0x11, "alg": 1, "colour": 1, "validity": 120} | fields
    body = struct.pack(
        ">BI4s16sBIH",
        values["head"],
        values["alg"] << 24 | GUANGDE,
        world.guangde_key_id,
        os.urandom(16),
        values["colour"],
        NOW,
        values["validity"],
    )
    return "YA:" + base45.encode(body + world.guangde.sign(body))


def _signed_ride(holder: Holder, head: int = 0x13, alg: int = 1, counter: int = 1) -> str:
    cert = holder.certificate
    assert cert is not None
    body = struct.pack(">BB", head, alg) + cert.raw + struct.pack(">IH", NOW, counter)
    device_key = Ed25519PrivateKey.from_private_bytes(holder.private_bytes())
    return "YR:" + base45.encode(body + device_key.sign(body))


def test_a_well_signed_code_with_a_bad_header_is_malformed_once_its_key_is_known(world: World) -> None:
    """A verifier that has seen the key (or certificate) takes a short path for well-formed codes: each header
    field that makes a code malformed must still be found on it, alone and in a group."""
    holder = world.holder()
    bad = [
        _signed_ankang(world, head=0x21),  # format version 2
        _signed_ankang(world, head=0x12),  # a device certificate's type
        _signed_ankang(world, alg=2),  # SM2, reserved
        _signed_ankang(world, colour=0),
        _signed_ankang(world, colour=4),
        _signed_ankang(world, validity=0),
        _signed_ride(holder, head=0x23),
        _signed_ride(holder, head=0x11),
        _signed_ride(holder, alg=2),
        _signed_ride(holder, counter=0),
    ]
    assert isinstance(
        Verifier(world.trust_list()).verify(_signed_ankang(world), NOW), VerifiedCode
    )  # the helpers
    assert isinstance(Verifier(world.trust_list()).verify(_signed_ride(holder), NOW), VerifiedCode)
    warm = [(_signed_ankang(world), NOW), (_signed_ride(holder), NOW)]
    for payload in bad:
        verifier = Verifier(world.trust_list())
        verifier.verify_many(warm)  # the key and the certificate are known from here on
        assert rejected(verifier, payload) == "credential.malformed", payload
    verifier = Verifier(world.trust_list())
    answers = verifier.verify_many([*warm, *((payload, NOW) for payload in bad)])
    assert all(isinstance(a, VerifiedCode) for a in answers[:2])
    assert [a.code for a in answers[2:]] == ["credential.malformed"] * len(bad)  # type: ignore[union-attr]
