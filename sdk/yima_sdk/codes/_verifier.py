"""`Verifier`: the one credential check shared by the server scan path and offline terminals.

Besides Ankang and ride codes it checks app passes (`YP1.`, yima_sdk.passes: tickets, door plates): the signing
key must be on the trust list for `app_pass` as a key of the pass issuer (the platform whose apps issue passes,
`pass_issuer`), the signature good, the pass not expired (with the clock-skew tolerance) and, with revocations,
not revoked. What a pass admits only its issuing app knows: the server asks it.

A check costs one Ed25519 verification for an Ankang code and two for a ride code (one when the
device certificate was already checked by this `Verifier`: checked certificates are cached, and a ride
code carrying one is decoded only around it). Signatures are verified by libsodium (`yima_sdk._ed25519`).
Reason codes: see `_errors.py`. What the verifier trusts (issuer keys, checked certificates, their caches) is
`_trusted.py`; the app-pass check `_pass_check.py`.

A group of codes (`verify_many`) is read as fixed-size records in place: the group's Base45 text is
decoded into one buffer, and `struct.iter_unpack` reads every record of it in C. The Python work per code
is then a few comparisons, which is what keeps a terminal's rate close to libsodium's own
(docs/benchmarks.md). `verify` puts one code through the same checks without a group's set-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from typing import TYPE_CHECKING

from yima_sdk import base45
from yima_sdk._credential_errors import CredentialError
from yima_sdk._ed25519 import NULL, sodium_open
from yima_sdk.codes._formats import (
    ALG_ED25519,
    ANKANG_HEAD_BYTE,
    ANKANG_PREFIX,
    ANKANG_RECORD,
    ANKANG_REPLAY,
    ANKANG_SIGNED,
    ANKANG_SIGNED_SIZE,
    ANKANG_SIZE,
    ANKANG_TEXT_SIZE,
    COLOUR_OF,
    RIDE_CERTIFICATE_TEXT,
    RIDE_HEAD_BYTE,
    RIDE_PREFIX,
    RIDE_REST,
    RIDE_REST_PARTS,
    RIDE_TEXT_SIZE,
    RideCode,
    decode,
    ride_alg,
    ride_rest,
    ride_tail,
    text_around_certificate,
)
from yima_sdk.codes._pass_check import verify_pass
from yima_sdk.codes._trusted import TrustedKeys
from yima_sdk.codes._verified import CheckedCertificate, IssuerKey, VerifiedCode
from yima_sdk.passes import PASS_PREFIX

if TYPE_CHECKING:
    # Only for annotations: yima_sdk.trust imports from this package.
    from yima_sdk.trust import RevocationSet, TrustList

__all__ = ["VerifiedCode", "Verifier"]


class Verifier:
    """Verifies Ankang and ride codes against one trust list, with an explicit clock-skew tolerance."""

    def __init__(
        self,
        trust_list: TrustList,
        *,
        clock_skew_s: float = 30.0,
        ride_window_s: float = 60.0,
        certificate_cache_size: int = 4096,
        pass_issuer: int | None = None,
    ) -> None:
        """`pass_issuer`: the issuer (division code) whose `app_pass` keys sign the passes this verifier accepts.
        A pass names no issuer: it is signed by the platform whose apps issue it, so a pass key of another issuer
        on the list (a partner county's) never verifies one. None: the one issuer holding `app_pass` keys on the
        trust list; when several do, every pass is refused (`credential.unknown_key`) rather than guessed."""
        self.trust_list = trust_list
        self.clock_skew_s = clock_skew_s
        self.ride_window_s = ride_window_s
        self._trusted = TrustedKeys(trust_list, certificate_cache_size, pass_issuer)
        # The trusted keys' caches, read on every code: the same dicts, one attribute load away.
        self._ankang_keys = self._trusted.ankang_keys
        self._certificate_texts = self._trusted.certificate_texts

    def verify(self, payload: str, now: float, *, revocations: RevocationSet | None = None) -> VerifiedCode:
        """Decode and fully check `payload` at time `now` (unix seconds); raise `CredentialError`."""
        answer = self._verify_one(payload, now, revocations)
        if isinstance(answer, CredentialError):
            raise answer
        return answer

    def verify_many(
        self, items: Sequence[tuple[str, float]], *, revocations: RevocationSet | None = None
    ) -> list[VerifiedCode | CredentialError]:
        """Check a group of (payload, now) pairs: per pair, the `VerifiedCode` or the `CredentialError`.

        Each code goes through its checks in a fixed order, and the first that fails is its answer:
        malformed; issuer key unknown (for a ride code, then its certificate's signature and key window,
        unless the certificate was checked before); signature; the key's window at issue time (Ankang);
        time windows, use limit and revocation.
        """
        if len(items) == 1:
            ((payload, now),) = items
            return [self._verify_one(payload, now, revocations)]
        return self._verify_group(items, revocations)

    def _verify_one(
        self, payload: str, now: float, revocations: RevocationSet | None
    ) -> VerifiedCode | CredentialError:
        """One code, with the group's checks but without a group's set-up (the online scan path)."""
        size = len(payload)
        if size == ANKANG_TEXT_SIZE and payload[:3] == ANKANG_PREFIX:
            return self._verify_ankang(payload, now, revocations)
        if size == RIDE_TEXT_SIZE and payload[:3] == RIDE_PREFIX:
            cert = self._certificate_texts.get(payload[RIDE_CERTIFICATE_TEXT])
            if cert is not None:
                return self._verify_ride(payload, cert, now, revocations)
        # a certificate not checked yet, or text of no credential's shape
        return self._verify_group(((payload, now),), revocations)[0]

    def _verify_ankang(
        self, payload: str, now: float, revocations: RevocationSet | None
    ) -> VerifiedCode | CredentialError:
        try:
            raw = base45.decode(payload[3:])
        except base45.Base45Error as exc:
            return CredentialError("credential.malformed", str(exc))
        record = ANKANG_RECORD.unpack(raw)
        head, key_ref, _, colour, _, validity, signature = record
        key = self._ankang_keys.get(key_ref)
        if key is None or head != ANKANG_HEAD_BYTE or validity == 0 or colour not in COLOUR_OF:
            try:
                key = self._trusted.ankang_key(key_ref, raw)
            except CredentialError as exc:
                return exc
        signed = raw[:ANKANG_SIGNED_SIZE]
        bad = sodium_open(NULL, NULL, signature + signed, ANKANG_SIZE, key.public_key.raw)
        return self._ankang_answer(record, signed[2:30], key, bad, now, revocations)

    def _verify_ride(
        self, payload: str, cert: CheckedCertificate, now: float, revocations: RevocationSet | None
    ) -> VerifiedCode | CredentialError:
        try:
            rest = base45.decode(text_around_certificate(payload))
        except base45.Base45Error as exc:
            return CredentialError("credential.malformed", str(exc))
        record = RIDE_REST.unpack(rest)
        head, alg, _, counter, signature = record
        head_bytes, tail_bytes = RIDE_REST_PARTS.unpack(rest)
        if head != RIDE_HEAD_BYTE or alg != ALG_ED25519 or counter == 0:
            return _malformed_ride(head_bytes + tail_bytes)
        signed_message = b"".join((signature, head_bytes, cert.raw, tail_bytes))
        bad = sodium_open(NULL, NULL, signed_message, len(signed_message), cert.device_key)
        return self._ride_answer(record, cert, bad, now, revocations)

    def _verify_group(
        self, items: Sequence[tuple[str, float]], revocations: RevocationSet | None
    ) -> list[VerifiedCode | CredentialError]:
        """`verify_many` for a group: three passes over it. Every code's bytes and the checks before its
        signature, then every Ed25519 verification back to back, then the checks after them. The
        verifications are most of the work, and run measurably faster with no Python work between them
        (docs/benchmarks.md)."""
        out: list[VerifiedCode | CredentialError | None] = [None] * len(items)
        ankang_at: list[int] = []
        ankang_texts: list[str] = []
        ride_at: list[int] = []
        ride_texts: list[str] = []
        ride_certs: list[CheckedCertificate] = []
        rides_decoded: list[tuple[int, bytes, CheckedCertificate]] = []
        known = self._certificate_texts
        for i, (payload, _) in enumerate(items):
            size = len(payload)
            if size == ANKANG_TEXT_SIZE and payload[:3] == ANKANG_PREFIX:
                ankang_at.append(i)
                ankang_texts.append(payload[3:])
                continue
            if size == RIDE_TEXT_SIZE and payload[:3] == RIDE_PREFIX:
                cert = known.get(payload[RIDE_CERTIFICATE_TEXT])
                if cert is not None:
                    ride_at.append(i)
                    ride_texts.append(text_around_certificate(payload))
                    ride_certs.append(cert)
                    continue
            if payload[:4] == PASS_PREFIX:
                out[i] = verify_pass(
                    self._trusted.pass_keys, payload, items[i][1], self.clock_skew_s, revocations
                )
                continue
            # A ride code with a certificate not checked yet, or text of no credential's shape (refused here:
            # an Ankang code decodes only from the 147 characters sorted above).
            try:
                code = decode(payload)
                assert type(code) is RideCode
                raw = code.signed + code.signature
                rides_decoded.append(
                    (i, ride_rest(raw), self._trusted.certificate(code.certificate, payload))
                )
            except CredentialError as exc:
                out[i] = exc

        ankang_at, ankang_bytes = _decoded_group(ankang_at, ankang_texts, out)
        kept, ride_bytes = _decoded_group(ride_at, ride_texts, out)
        if len(kept) < len(ride_at):
            keep = set(kept)
            ride_certs = [cert for i, cert in zip(ride_at, ride_certs, strict=True) if i in keep]
        ride_at = kept
        if rides_decoded:
            ride_at += [i for i, _, _ in rides_decoded]
            ride_bytes += b"".join([rest for _, rest, _ in rides_decoded])
            ride_certs += [cert for _, _, cert in rides_decoded]

        # Pass 1: the checks before the signature, and the bytes each signature covers.
        signed_messages: list[bytes] = []
        public_keys: list[bytes] = []
        ankang: list[tuple[int, tuple[int, bytes, bytes, int, int, int, bytes], bytes, IssuerKey]] = []
        ankang_keys = self._ankang_keys
        for i, record, (signed,), (replay,) in zip(
            ankang_at,
            ANKANG_RECORD.iter_unpack(ankang_bytes),
            ANKANG_SIGNED.iter_unpack(ankang_bytes),
            ANKANG_REPLAY.iter_unpack(ankang_bytes),
            strict=True,
        ):
            head, key_ref, _, colour, _, validity, signature = record
            key = ankang_keys.get(key_ref)
            if key is None or head != ANKANG_HEAD_BYTE or validity == 0 or colour not in COLOUR_OF:
                try:
                    key = self._trusted.ankang_key(key_ref, signed + signature)
                except CredentialError as exc:
                    out[i] = exc
                    continue
            signed_messages.append(signature + signed)
            public_keys.append(key.public_key.raw)
            ankang.append((i, record, replay, key))
        rides: list[tuple[int, tuple[int, int, int, int, bytes], CheckedCertificate]] = []
        for i, record, (head_bytes, tail_bytes), cert in zip(
            ride_at,
            RIDE_REST.iter_unpack(ride_bytes),
            RIDE_REST_PARTS.iter_unpack(ride_bytes),
            ride_certs,
            strict=True,
        ):
            head, alg, _, counter, signature = record
            if head != RIDE_HEAD_BYTE or alg != ALG_ED25519 or counter == 0:
                out[i] = _malformed_ride(head_bytes + tail_bytes)
                continue
            signed_messages.append(b"".join((signature, head_bytes, cert.raw, tail_bytes)))
            public_keys.append(cert.device_key)
            rides.append((i, record, cert))

        # Pass 2: every signature, one libsodium call each, driven by `map` (no Python bytecode between them).
        count = len(signed_messages)
        failed = list(
            map(
                sodium_open,
                repeat(NULL, count),
                repeat(NULL, count),
                signed_messages,
                map(len, signed_messages),
                public_keys,
            )
        )

        # Pass 3: the checks after the signature.
        ankang_answer, ride_answer = self._ankang_answer, self._ride_answer
        for (i, record, replay, key), bad in zip(ankang, failed[: len(ankang)], strict=True):
            out[i] = ankang_answer(record, replay, key, bad, items[i][1], revocations)
        for (i, record, cert), bad in zip(rides, failed[len(ankang) :], strict=True):
            out[i] = ride_answer(record, cert, bad, items[i][1], revocations)
        return out  # type: ignore[return-value]  # every slot was filled above

    def _ankang_answer(
        self,
        record: tuple[int, bytes, bytes, int, int, int, bytes],
        replay: bytes,
        key: IssuerKey,
        bad_signature: int,
        now: float,
        revocations: RevocationSet | None,
    ) -> VerifiedCode | CredentialError:
        """An Ankang code's answer once its signature was checked (`bad_signature` is libsodium's result)."""
        _, _, ref, colour, issued_at, validity, _ = record
        skew = self.clock_skew_s
        if bad_signature:
            return CredentialError("credential.bad_signature")
        if not key.not_before <= issued_at <= key.not_after:
            return CredentialError("credential.key_not_valid", "issued outside the key's validity window")
        if issued_at > now + skew:
            return CredentialError("credential.not_yet_valid")
        if now > issued_at + validity + skew:
            return CredentialError("credential.expired")
        if revocations is not None and revocations.subject_revoked(key.issuer, ref):
            return CredentialError("credential.revoked")
        # issuer, key id, subject ref, colour, issued-at: one code instance.
        replay_key = b"A" + replay
        return VerifiedCode(
            "ankang_code",
            key.issuer,
            key.key_id,
            ref,
            COLOUR_OF[colour],
            issued_at,
            issued_at + validity,
            replay_key,
        )

    def _ride_answer(
        self,
        record: tuple[int, int, int, int, bytes],
        cert: CheckedCertificate,
        bad_signature: int,
        now: float,
        revocations: RevocationSet | None,
    ) -> VerifiedCode | CredentialError:
        """A ride code's answer once its device signature was checked: certificate and timestamp windows, use
        limit, revocation."""
        _, _, timestamp, counter, _ = record
        skew = self.clock_skew_s
        if bad_signature:
            return CredentialError("credential.bad_signature", "device signature")
        if cert.issued_at > now + skew:
            return CredentialError("credential.not_yet_valid", "device certificate not yet valid")
        if now > cert.expires_at + skew:
            return CredentialError("credential.device_certificate_expired")
        if timestamp > now + skew:
            return CredentialError("credential.not_yet_valid", "ride timestamp in the future")
        if timestamp < now - self.ride_window_s - skew:
            return CredentialError("credential.stale_timestamp")
        if counter > cert.max_uses:
            return CredentialError("credential.offline_limit_exceeded", "use counter past the limit")
        if revocations is not None and (
            revocations.certificate_revoked(cert.issuer, cert.serial)
            or revocations.subject_revoked(cert.issuer, cert.account_ref)
        ):
            return CredentialError("credential.revoked")
        return VerifiedCode(
            "ride_code",
            cert.issuer,
            cert.key_id,
            cert.account_ref,
            None,
            timestamp,
            min(cert.expires_at, int(timestamp + self.ride_window_s)),
            cert.replay_prefix + counter.to_bytes(2, "big"),
            cert.serial,
            counter,
            cert.max_uses,
            cert.max_amount,
        )


def _decoded_group(
    at: list[int], texts: list[str], out: list[VerifiedCode | CredentialError | None]
) -> tuple[list[int], bytes]:
    """The Base45 texts of a group of same-shaped codes (at positions `at`) decoded into one buffer: the
    positions kept, and their bytes. A text that is not Base45 gets its error in `out` and is left out."""
    if len(texts) > 1:  # a lone text costs less through the one-text decoder; none costs nothing
        joined = base45.decode_joined(texts)
        if joined is not None:
            return at, joined
    elif not texts:
        return at, b""
    kept: list[int] = []
    parts: list[bytes] = []
    for i, text in zip(at, texts, strict=True):
        try:
            parts.append(base45.decode(text))
        except base45.Base45Error as exc:
            out[i] = CredentialError("credential.malformed", str(exc))
        else:
            kept.append(i)
    return kept, b"".join(parts)


def _malformed_ride(head_and_tail: bytes) -> CredentialError:
    """The error `decode` gives for a ride code (around a checked certificate, so of the right length and
    suite) whose own head or tail is wrong."""
    try:
        ride_alg(head_and_tail)
        ride_tail(head_and_tail, 2)  # the tail follows the two head bytes
    except CredentialError as exc:
        return exc
    raise AssertionError("a ride code refused by the group checks has a good head and tail")
