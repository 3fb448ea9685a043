"""Trust list envelopes (root signature, rollback, ETag) and versioned revocation deltas."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sdk_world import GUANGDE, World
from yima_sdk.trust import (
    RevocationError,
    RevocationSet,
    TrustList,
    TrustListError,
    build_trust_list,
    encode_revocation_delta,
    pass_ref,
    trust_list_etag,
)


def refused(envelope: bytes, world: World, held: TrustList | None = None) -> str:
    with pytest.raises(TrustListError) as info:
        TrustList.verify(envelope, world.roots, held=held)
    return info.value.code


def test_round_trip_and_etag(world: World) -> None:
    envelope = world.envelope()
    trust_list = TrustList.verify(envelope, world.roots)
    assert trust_list.version == 1
    assert trust_list.entries == tuple(world.entries())
    assert trust_list.etag == trust_list_etag(envelope)
    assert trust_list.etag.startswith('"') and len(trust_list.etag) == 34
    # Re-fetching the same list is fine; the held one is returned unchanged.
    assert TrustList.verify(envelope, world.roots, held=trust_list).document == trust_list.document


def test_signature_and_root_pinning(world: World) -> None:
    envelope = json.loads(world.envelope())
    document = json.loads(base64.urlsafe_b64decode(envelope["document"] + "=="))
    document["entries"][0]["not_after"] += 1
    envelope["document"] = base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")
    assert refused(json.dumps(envelope).encode(), world) == "trust_list.bad_signature"
    stranger = build_trust_list(world.entries(), 9, Ed25519PrivateKey.generate(), "root-2026", 0)
    assert refused(stranger, world) == "trust_list.bad_signature"
    other_root = build_trust_list(world.entries(), 9, world.root, "root-2099", 0)
    assert refused(other_root, world) == "trust_list.unknown_root"


@pytest.mark.parametrize(
    "envelope",
    [b"", b"[]", b"{}", b'{"document": "!!", "signature": "", "root_key_id": "root-2026"}', b"\xff"],
)
def test_malformed(world: World, envelope: bytes) -> None:
    assert refused(envelope, world) == "trust_list.malformed"


def test_unknown_fields_in_signed_document_are_malformed(world: World) -> None:
    document = json.dumps({"version": 1, "issued_at": 0, "entries": [], "extra": 1}).encode()
    envelope = json.dumps(
        {
            "document": base64.urlsafe_b64encode(document).decode(),
            "signature": base64.urlsafe_b64encode(world.root.sign(document)).decode(),
            "root_key_id": "root-2026",
        }
    ).encode()
    assert refused(envelope, world) == "trust_list.malformed"


def test_rollback_is_refused(world: World) -> None:
    v5 = TrustList.verify(world.envelope(version=5), world.roots)
    assert refused(world.envelope(version=4), world, held=v5) == "trust_list.rollback"
    # Same version, different content: the root never does that, so it is not accepted either.
    assert (
        refused(world.envelope(version=5, entries=world.entries()[:1]), world, held=v5)
        == "trust_list.rollback"
    )
    assert TrustList.verify(world.envelope(version=6), world.roots, held=v5).version == 6


def test_revocation_deltas_refuse_gaps() -> None:
    revocations = RevocationSet()
    revocations.apply_delta(GUANGDE, 0, 3, [("subject", b"\x01" * 16)])
    with pytest.raises(RevocationError) as info:
        revocations.apply_delta(GUANGDE, 4, 5, [("subject", b"\x02" * 16)])
    assert info.value.code == "revocation.gap"
    assert not revocations.subject_revoked(GUANGDE, b"\x02" * 16)
    assert revocations.version(GUANGDE) == 3
    with pytest.raises(RevocationError):
        revocations.apply_delta(GUANGDE, 3, 4, [("device_certificate", b"\x01" * 16)])  # serials are 8 bytes
    revocations.apply_delta(GUANGDE, 3, 4, [("device_certificate", b"\x09" * 8)])
    assert revocations.certificate_revoked(GUANGDE, b"\x09" * 8)
    assert revocations.subject_revoked(GUANGDE, b"\x01" * 16)
    assert not revocations.subject_revoked(341821, b"\x01" * 16)


def test_revocation_wire_body_round_trip() -> None:
    revocations = RevocationSet()
    revocations.apply_response(encode_revocation_delta(GUANGDE, 0, 2, [(1, "subject", b"\x01" * 16)]))
    body = encode_revocation_delta(GUANGDE, 2, 3, [(3, "device_certificate", b"\x02" * 8)])
    assert json.loads(body) == {
        "issuer": GUANGDE,
        "since": 2,
        "version": 3,
        "entries": [{"version": 3, "kind": "device_certificate", "ref": "AgICAgICAgI"}],
    }
    revocations.apply_response(body)
    assert revocations.version(GUANGDE) == 3
    assert revocations.certificate_revoked(GUANGDE, b"\x02" * 8)
    # A full list (since 0) replaces what is held.
    revocations.apply_response(encode_revocation_delta(GUANGDE, 0, 7, []))
    assert not revocations.subject_revoked(GUANGDE, b"\x01" * 16)
    for bad in (
        b"{}",
        encode_revocation_delta(GUANGDE, 7, 8, [(9, "subject", b"\x01" * 16)]),  # entry outside (7, 8]
        b'{"issuer": 341822, "since": 7, "version": 8, "entries": [{"version": 8, "kind": "x", "ref": ""}]}',
        b'{"issuer": 341822, "since": 7, "version": 8, "entries": [{"version": 8, "kind": "A b", "ref": "AQ"}]}',
        encode_revocation_delta(GUANGDE, 7, 8, [(8, "app_pass", b"\x01" * 7)]),  # a known kind stays strict
    ):
        with pytest.raises(RevocationError):
            revocations.apply_response(bad)
    assert revocations.version(GUANGDE) == 7


def test_entries_of_a_kind_from_a_newer_list_are_kept_aside_and_the_rest_applied() -> None:
    revocations = RevocationSet()
    body = encode_revocation_delta(
        GUANGDE,
        0,
        3,
        [(1, "subject", b"\x01" * 16), (2, "door_plate_v2", b"\x02" * 5), (3, "app_pass", pass_ref(9))],
    )
    revocations.apply_response(body)
    assert revocations.version(GUANGDE) == 3
    assert revocations.subject_revoked(GUANGDE, b"\x01" * 16) and revocations.pass_revoked(GUANGDE, 9)
    assert revocations.unknown_kinds() == {"door_plate_v2": 1} == revocations.unknown_kinds(GUANGDE)
    assert revocations.unknown_kinds(341821) == {}
    revocations.apply_response(encode_revocation_delta(GUANGDE, 0, 4, []))  # a full list replaces them too
    assert revocations.unknown_kinds() == {}
