"""The terminal page's offline checks (server/web/terminal/codes.js, in real Chromium with WebCrypto) give the same
answer as yima_sdk's `Verifier` for every kind of code and for app passes: each case is decided by both, and the
reasons must match (revocation lists carrying a kind neither knows included).
Also the trust list's and the signed time's refusals, and an offline session (repeats, a ride code spent once, the
offline spending limit, what is recorded) against yima_sdk's `Terminal`."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.async_api import Browser
from yima_sdk import base45
from yima_sdk.codes import (
    CredentialError,
    Verifier,
    certificate_serial,
    issue_ankang_code,
    issue_device_certificate,
)
from yima_sdk.holder import Holder
from yima_sdk.passes import PassClaims, seal_pass
from yima_sdk.terminal import Terminal, sign_server_time
from yima_sdk.trust import (
    RevocationError,
    RevocationSet,
    TrustEntry,
    TrustList,
    build_trust_list,
    decode_revocation_delta,
    encode_revocation_delta,
    pass_ref,
)

from tests.browser.conftest import opened
from tests.e2e._real import RealServer

NOW = 1_796_630_400
GUANGDE, ANJI = 341822, 330523
KID, OLD_KID, RIDE_KID = b"\x00\x00\x00\x01", b"\x00\x00\x00\x02", b"\x00\x00\x00\x03"
PASS_KID, PARTNER_PASS_KID = b"\x00\x00\x00\x04", b"\x00\x00\x00\x05"


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def flipped(payload: str, at: int) -> str:
    """`payload` with one byte of its credential changed (re-encoded, so only the signature check can tell)."""
    data = bytearray(base45.decode(payload[3:]))
    data[at] ^= 0x01
    return payload[:3] + base45.encode(bytes(data))


def cases() -> tuple[dict[str, Any], dict[str, str]]:
    """The world both verifiers see (trust list, roots, revocations) and the payloads by case name."""
    root, issuer, old, rides, stranger = (Ed25519PrivateKey.generate() for _ in range(5))
    passes, partner_passes = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    both = frozenset({"ankang_code", "device_certificate"})
    app_pass = frozenset({"app_pass"})
    entries = [
        TrustEntry(GUANGDE, KID, 1, raw(issuer), both, NOW - 86_400, NOW + 86_400),
        TrustEntry(GUANGDE, OLD_KID, 1, raw(old), both, NOW - 86_400 * 9, NOW - 86_400 * 8),
        TrustEntry(
            ANJI, RIDE_KID, 1, raw(rides), frozenset({"device_certificate"}), NOW - 86_400, NOW + 86_400
        ),
        TrustEntry(GUANGDE, PASS_KID, 1, raw(passes), app_pass, NOW - 86_400, NOW + 86_400 * 365),
        # a partner county's pass keys, under its own key id and under ours: neither signs our apps' passes
        TrustEntry(ANJI, PARTNER_PASS_KID, 1, raw(partner_passes), app_pass, NOW - 86_400, NOW + 86_400),
        TrustEntry(ANJI, PASS_KID, 1, raw(partner_passes), app_pass, NOW - 86_400, NOW + 86_400),
    ]
    envelope = build_trust_list(entries, 3, root, "root-1", NOW - 60)

    def ankang(ref: int = 1, **kw: Any) -> str:
        args: dict[str, Any] = {"colour": "green", "issued_at": NOW - 10, "validity": 120} | kw
        return issue_ankang_code(
            issuer, KID, GUANGDE, bytes([ref]) * 16, args["colour"], args["issued_at"], args["validity"]
        )

    phone, spent_phone = Holder.generate(), Holder.generate()
    certificate = issue_device_certificate(
        rides, RIDE_KID, ANJI, bytes([7]) * 16, phone.device_public_key, NOW - 3600, 24, 5, 10_000
    )
    phone.install_certificate(certificate)
    revoked_cert = issue_device_certificate(
        rides, RIDE_KID, ANJI, bytes([8]) * 16, spent_phone.device_public_key, NOW - 3600, 24, 5, 10_000
    )
    spent_phone.install_certificate(revoked_cert)
    expired_phone = Holder.generate()
    expired_phone.install_certificate(
        issue_device_certificate(
            rides, RIDE_KID, ANJI, bytes([9]) * 16, expired_phone.device_public_key, NOW - 7200, 1, 5, 10_000
        )
    )
    good_ride = phone.ride_code(NOW - 5)

    def ticket(
        number: int = 1, key: Ed25519PrivateKey = passes, kid: bytes = PASS_KID, exp: int = NOW + 3600
    ) -> str:
        claims = PassClaims(
            p=number, a="gov.guangde.tourism", k="ticket", s=None, d={"slot": "x"}, exp=exp, kid=kid.hex()
        )
        return seal_pass(claims, key)

    good_pass = ticket()
    claims_part, _, signature_part = good_pass.rpartition(".")
    revocations = [
        encode_revocation_delta(  # a revoked app pass (a cancelled ticket), and kinds of a newer list
            GUANGDE,
            0,
            5,
            [
                (1, "subject", bytes([4]) * 16),
                (2, "app_pass", pass_ref(7)),
                (3, "door_plate_v2", bytes([9]) * 5),
                # a kind named like a property every JavaScript object inherits: kept aside all the same
                (4, "constructor", bytes([9]) * 3),
                (5, "subject", bytes([5]) * 16),
            ],
        ),
        encode_revocation_delta(  # pass 8 revoked by Anji: a pass number counts for its issuer only
            ANJI,
            0,
            2,
            [(1, "device_certificate", certificate_serial(revoked_cert[:68])), (2, "app_pass", pass_ref(8))],
        ),
    ]
    payloads = {
        "ankang green": ankang(),
        "ankang yellow": ankang(colour="yellow"),
        "ankang red at the edge of the skew": ankang(colour="red", issued_at=NOW + 29),
        "ankang from the future": ankang(issued_at=NOW + 31),
        "ankang expired": ankang(issued_at=NOW - 200),
        "ankang expired within the skew": ankang(issued_at=NOW - 140),
        "ankang revoked": ankang(ref=4),
        "ankang bad signature": flipped(ankang(), 90),
        "ankang changed colour": flipped(ankang(colour="yellow"), 25),
        "ankang by a key no longer valid": issue_ankang_code(
            old, OLD_KID, GUANGDE, bytes(16), "green", NOW - 10
        ),
        "ankang by an unknown key": issue_ankang_code(
            stranger, b"\x00\x00\x00\x09", GUANGDE, bytes(16), "green", NOW
        ),
        "ankang by a key that may not sign it": issue_ankang_code(
            rides, RIDE_KID, ANJI, bytes(16), "green", NOW
        ),
        "ankang truncated": ankang()[:-3],
        "ankang lower case": "YA:" + ankang()[3:].lower(),
        "ankang base45 overflow": "YA:GGW" + ankang()[6:],
        "unknown prefix": "YB:" + ankang()[3:],
        "empty": "",
        "ride": good_ride,
        "ride stale": phone.ride_code(NOW - 100),
        "ride from the future": phone.ride_code(NOW + 40),
        "ride counter past the limit": phone.ride_code(NOW, counter=6),
        "ride device signature": flipped(phone.ride_code(NOW), 200),
        "ride certificate signature": flipped(phone.ride_code(NOW), 100),
        "ride certificate revoked": spent_phone.ride_code(NOW),
        "ride certificate expired": expired_phone.ride_code(NOW),
        "ride counter zero": flipped_counter(phone.ride_code(NOW)),
        "ankang revoked after a newer kind": ankang(ref=5),
        "pass": good_pass,
        "pass revoked": ticket(7),
        "pass revoked elsewhere only": ticket(8),
        "pass expired": ticket(exp=NOW - 31),
        "pass expired within the skew": ticket(exp=NOW - 29),
        "pass bad signature": claims_part
        + "."
        + signature_part[:-4]
        + ("AAAA" if signature_part[-4:] != "AAAA" else "BBBB"),
        "pass changed claims": ticket(number=9).rpartition(".")[0] + "." + signature_part,
        "pass by an unknown key": ticket(key=stranger, kid=b"\x00\x00\x00\x09"),
        "pass by a partner's pass key": ticket(key=partner_passes, kid=PARTNER_PASS_KID),
        "pass by a partner's key under our key id": ticket(key=partner_passes, kid=PASS_KID),
        "pass not decoding": "YP1.eyJwIjo.AAAA",
        "pass with a field too many": seal_pass_raw(
            passes,
            {"p": 1, "a": "x", "k": "t", "s": None, "d": {}, "exp": NOW + 60, "kid": PASS_KID.hex(), "z": 1},
        ),
    }
    world = {
        "envelope": envelope.decode(),
        "roots": {"root-1": b64(raw(root))},
        "revocations": [[GUANGDE, revocations[0].decode()], [ANJI, revocations[1].decode()]],
        "time": sign_server_time(root, "root-1", NOW * 1000, "nonce-0123456789abcdef").decode(),
        "python": _python_answers(envelope, raw(root), revocations, payloads),
    }
    return world, payloads


def delta_cases() -> dict[str, str]:
    """Revocation deltas (issuer 1, since 0) whose kinds are names a JavaScript object answers to, or no names."""

    def delta(kind: Any, ref: str = "AQID") -> str:
        entries = [
            {"version": 1, "kind": kind, "ref": ref},
            {"version": 2, "kind": "subject", "ref": b64(bytes(16))},
        ]
        return json.dumps({"issuer": 1, "since": 0, "version": 2, "entries": entries})

    return {
        "constructor": delta("constructor"),
        "constructor, empty ref": delta("constructor", ""),
        "__proto__": delta("__proto__"),
        "toString": delta("toString"),
        "hasOwnProperty": delta("hasOwnProperty"),
        "valueof": delta("valueof"),
        "a list naming a known kind": delta(["subject"], b64(bytes(16))),
        "a list naming an unknown kind": delta(["door_plate_v2"]),
        "a number": delta(7),
        "null": delta(None),
    }


def _python_delta_answers(deltas: dict[str, str]) -> dict[str, Any]:
    """Per delta: the unknown kinds held and whether the subject beside it counts, or the refusal's code."""
    answers: dict[str, Any] = {}
    for name, body in deltas.items():
        revoked = RevocationSet()
        try:
            revoked.apply_response(body.encode())
        except RevocationError as exc:
            answers[name] = exc.code
            continue
        answers[name] = [revoked.unknown_kinds(), revoked.subject_revoked(1, bytes(16)), revoked.version(1)]
    return answers


def seal_pass_raw(key: Ed25519PrivateKey, claims: dict[str, Any]) -> str:
    """A pass signed over claims of any shape (yima_sdk.passes only seals `PassClaims`)."""
    signed = "YP1." + b64(json.dumps(claims, separators=(",", ":")).encode())
    return signed + "." + b64(key.sign(signed.encode()))


def flipped_counter(payload: str) -> str:
    """A ride code whose use counter reads 0 (malformed whatever its signature)."""
    data = bytearray(base45.decode(payload[3:]))
    data[138:140] = b"\x00\x00"
    return payload[:3] + base45.encode(bytes(data))


def _python_answers(
    envelope: bytes, root: bytes, revocations: list[bytes], payloads: dict[str, str]
) -> dict[str, str]:
    trust_list = TrustList.verify(envelope, {"root-1": root})
    revoked = RevocationSet()
    for issuer, body in ((GUANGDE, revocations[0]), (ANJI, revocations[1])):
        delta, added = decode_revocation_delta(body)
        revoked.apply_delta(issuer, delta.since, delta.version, added)
    verifier = Verifier(trust_list, clock_skew_s=30, ride_window_s=60, pass_issuer=GUANGDE)
    answers = {}
    for name, payload in payloads.items():
        try:
            verifier.verify(payload, NOW, revocations=revoked)
            answers[name] = "accept"
        except CredentialError as exc:
            answers[name] = exc.code
    return answers


PAGE_SIDE = """async ([world, payloads, now]) => {
    const codes = await import("/terminal/codes.js");
    const refusal = async (work) => { try { await work(); return "ok"; } catch (e) { return e.code ?? String(e); } };
    const trustList = await codes.verifyTrustList(world.envelope, world.roots);
    const revocations = new codes.RevocationSet();
    for (const [issuer, body] of world.revocations) revocations.apply(body, issuer);
    const verifier = new codes.Verifier(trustList, { clockSkewS: 30, rideWindowS: 60, passIssuer: 341822 });
    const kept = new codes.RevocationSet(JSON.parse(JSON.stringify(revocations.toJSON())));
    const answers = {};
    for (const [name, payload] of Object.entries(payloads)) {
        answers[name] = await refusal(() => verifier.verify(payload, now, revocations));
        if (answers[name] === "ok") answers[name] = "accept";
    }
    const tampered = JSON.parse(world.envelope);
    tampered.signature = tampered.signature.slice(0, -2) + (tampered.signature.endsWith("AA") ? "BA" : "AA");
    const older = { version: 4, document: "" };
    return {
        answers,
        trust: [
            await refusal(() => codes.verifyTrustList(world.envelope, { other: world.roots["root-1"] })),
            await refusal(() => codes.verifyTrustList(JSON.stringify(tampered), world.roots)),
            await refusal(() => codes.verifyTrustList(world.envelope, world.roots, older)),
            await refusal(() => codes.verifyTrustList("{}", world.roots)),
        ],
        time: [
            await codes.verifyServerTime(world.time, world.roots, "nonce-0123456789abcdef"),
            await refusal(() => codes.verifyServerTime(world.time, world.roots, "another-nonce-0123456")),
        ],
        gap: await refusal(() => revocations.apply(JSON.stringify({issuer: 341822, since: 7, version: 8, entries: []}), 341822)),
        unknown: [revocations.unknownKinds(), kept.unknownKinds(), kept.passRevoked(341822, 7), kept.version(341822)],
        // the state a page from before app passes stored: synced again from the start
        old_state: new codes.RevocationSet({ 341822: { version: 9, subjects: [], certificates: [] } }).version(341822),
        deltas: await Promise.all(world.deltas.map(async ([name, body]) => {
            const held = new codes.RevocationSet();
            const refused = await refusal(() => held.apply(body, 1));
            const zero = new Uint8Array(16);
            return [name, refused !== "ok" ? refused : [held.unknownKinds(), held.subjectRevoked(1, zero), held.version(1)]];
        })),
        bad_kinds: [
            await refusal(() => new codes.RevocationSet().apply(JSON.stringify({issuer: 1, since: 0, version: 1, entries: [{version: 1, kind: "A b", ref: "AQ"}]}), 1)),
            await refusal(() => new codes.RevocationSet().apply(JSON.stringify({issuer: 1, since: 0, version: 1, entries: [{version: 1, kind: "app_pass", ref: "AQ"}]}), 1)),
        ],
    };
}"""


async def test_the_page_decides_every_case_as_the_sdk_does(web: RealServer, browser: Browser) -> None:
    world, payloads = cases()
    python = world.pop("python")
    assert len(set(python.values())) >= 10, python  # the cases cover most reasons, not one reason many times
    passes = {name: answer for name, answer in python.items() if name.startswith("pass")}
    assert passes == {
        "pass": "accept",
        "pass revoked": "credential.revoked",
        "pass revoked elsewhere only": "accept",
        "pass expired": "credential.expired",
        "pass expired within the skew": "accept",
        "pass bad signature": "credential.bad_signature",
        "pass changed claims": "credential.bad_signature",
        "pass by an unknown key": "credential.unknown_key",
        "pass by a partner's pass key": "credential.unknown_key",
        "pass by a partner's key under our key id": "credential.bad_signature",
        "pass not decoding": "credential.malformed",
        "pass with a field too many": "credential.malformed",
    }
    deltas = delta_cases()
    world["deltas"] = list(deltas.items())  # pairs: "__proto__" as an object's key would not reach the page
    python_deltas = _python_delta_answers(deltas)
    assert python_deltas == {
        "constructor": [{"constructor": 1}, True, 2],
        "constructor, empty ref": "revocation.malformed",
        "__proto__": "revocation.malformed",
        "toString": "revocation.malformed",
        "hasOwnProperty": "revocation.malformed",
        "valueof": [{"valueof": 1}, True, 2],
        "a list naming a known kind": "revocation.malformed",
        "a list naming an unknown kind": "revocation.malformed",
        "a number": "revocation.malformed",
        "null": "revocation.malformed",
    }
    async with opened(browser, web, "/terminal/") as tab:
        page_side = await tab.page.evaluate(PAGE_SIDE, [world, payloads, NOW])
    assert dict(page_side["deltas"]) == python_deltas
    assert page_side["answers"] == python
    assert page_side["trust"] == [
        "trust_list.unknown_root",
        "trust_list.bad_signature",
        "trust_list.rollback",
        "trust_list.malformed",
    ]
    assert page_side["time"] == [NOW * 1000, "time.nonce_mismatch"]
    assert page_side["gap"] == "revocation.gap"
    assert page_side["unknown"] == [{"door_plate_v2": 1, "constructor": 1}] * 2 + [True, 5]
    assert page_side["old_state"] == 0
    assert page_side["bad_kinds"] == ["revocation.malformed"] * 2
    assert tab.errors == []


def session() -> tuple[dict[str, Any], list[tuple[float, str, int]]]:
    """A terminal's offline session: (seconds after NOW, payload, amount in fen) in order, covering repeats
    within the replay window, a ride code shown again later, and the offline spending limit."""
    root, issuer = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    both = frozenset({"ankang_code", "device_certificate"})
    envelope = build_trust_list(
        [TrustEntry(GUANGDE, KID, 1, raw(issuer), both, NOW - 86_400, NOW + 86_400)], 1, root, "root-1", NOW
    )
    phone = Holder.generate()
    phone.install_certificate(
        issue_device_certificate(
            issuer, KID, GUANGDE, bytes(16), phone.device_public_key, NOW - 60, 24, 9, 10_000
        )
    )
    code = issue_ankang_code(issuer, KID, GUANGDE, bytes([3]) * 16, "yellow", NOW - 5)
    ride, second, third = (phone.ride_code(NOW) for _ in range(3))
    scans = [
        (0, code, 0),
        (1, code, 0),  # the same entry read again: the first answer, no new record
        (2, ride, 300),
        (4, ride, 0),  # within the replay window: the same answer
        (12, ride, 300),  # later: a ride code is spent once
        (13, second, 9_800),  # 300 + 9,800 passes the certificate's 10,000 fen
        (14, third, 9_700),  # 300 + 9,700 does not
        (40, code, 0),  # an entry code, after the replay window: a new entry
    ]
    return {"envelope": envelope.decode(), "roots": {"root-1": b64(raw(root))}}, scans


async def test_the_pages_offline_terminal_repeats_spends_and_records_as_the_sdks(
    web: RealServer, browser: Browser, tmp_path: Any
) -> None:
    world, scans = session()
    clock = [float(NOW)]
    terminal = Terminal(
        root_public_keys={"root-1": base64.urlsafe_b64decode(world["roots"]["root-1"] + "=")},
        db_path=str(tmp_path / "terminal.sqlite"),
        clock=lambda: clock[0],
        clock_source="ntp",
    )
    terminal.load_trust_list(world["envelope"].encode())
    python = []
    for after, payload, amount in scans:
        clock[0] = NOW + after
        decision = terminal.scan(payload, amount)
        python.append([decision.result, decision.reason, decision.repeated])
    stored = terminal.pending_count()
    terminal.close()

    async with opened(browser, web, "/terminal/") as tab:
        page_side = await tab.page.evaluate(
            """async ([world, scans, now]) => {
                const { Terminal } = await import("/terminal/terminal.js");
                const codes = await import("/terminal/codes.js");
                const store = await import("/terminal/store.js");
                await store.wipe();
                const terminal = new Terminal({ terminal: { id: "t-test" }, roots: world.roots });
                terminal.install(await codes.verifyTrustList(world.envelope, world.roots));
                const decisions = [];
                for (const [after, payload, amount] of scans) {
                    terminal.offsetS = now + after - Date.now() / 1000;  // the terminal's corrected clock
                    const d = await terminal.scanOffline(payload, amount);
                    decisions.push([d.result, d.reason, d.repeat === true]);
                }
                return { decisions, stored: (await store.pendingRecords()).length };
            }""",
            [world, scans, NOW],
        )
    assert [d[0:2] for d in python] == [
        ["accept", None],
        ["accept", None],
        ["accept", None],
        ["accept", None],
        ["reject", "credential.replayed"],
        ["reject", "credential.offline_limit_exceeded"],
        ["accept", None],
        ["accept", None],
    ]
    assert page_side == {"decisions": python, "stored": stored}
    assert stored == 6
    assert tab.errors == []
