"""Offline verification throughput on one core: raw Ed25519 vs Verifier vs Terminal (with durable records).

Run: .venv/bin/python tests/bench/bench_verify.py [--rounds 15] [--n 2000] [--batch 256]
Prints the median over interleaved rounds of each figure (verifications per second) and its ratios to raw
Ed25519: to libsodium's, the primitive the SDK verifies with, called directly on prepared inputs (the strict
baseline), and to OpenSSL's through `cryptography`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from nacl._sodium import ffi, lib
from yima_sdk.codes import Verifier, decode, issue_ankang_code, issue_device_certificate
from yima_sdk.holder import Holder
from yima_sdk.terminal import Terminal
from yima_sdk.trust import TrustEntry, TrustList, build_trust_list

GUANGDE = 341822
KEY_ID = b"\x00\x00\x00\x01"


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def rates(runs: dict[str, Callable[[], int]], rounds: int) -> dict[str, float]:
    """Median operations per second of each run (which returns how many it did) over `rounds` rounds.

    Each round runs every figure once, side by side, so a load change on the machine hits all of them
    alike instead of skewing the ratios; every other round runs them in reverse order, so a figure's place
    in the round does not favour it either.
    """
    seen: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs.items())
    for round_no in range(rounds):
        for name, run in order if round_no % 2 == 0 else reversed(order):
            start = time.perf_counter()
            done = run()
            seen[name].append(done / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in seen.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=256, help="scans per group commit on the terminal")
    args = parser.parse_args()
    n, rounds = args.n, args.rounds
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says

    root, issuer = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    now = int(time.time())
    entry = TrustEntry(
        GUANGDE, KEY_ID, 1, raw(issuer), frozenset({"ankang_code", "device_certificate"}), 0, 2**32 - 1
    )
    envelope = build_trust_list([entry], 1, root, "root", now)
    trust_list = TrustList.verify(envelope, {"root": raw(root)})
    verifier = Verifier(trust_list)

    ankang = [issue_ankang_code(issuer, KEY_ID, GUANGDE, os.urandom(16), "green", now, 120) for _ in range(n)]
    holders = []
    for _ in range(50):
        holder = Holder.generate()
        holder.install_certificate(
            issue_device_certificate(
                issuer, KEY_ID, GUANGDE, os.urandom(16), holder.device_public_key, now, 720, 65535, 10**6
            )
        )
        holders.append(holder)
    rides = [holders[i % 50].ride_code(now) for i in range(n)]
    # Every phone's certificate verified once, as a terminal on its route has.
    for payload in rides[:50]:
        verifier.verify(payload, now)
    # The terminal refuses a ride code shown again, so each round of the terminal figure scans fresh ones.
    fresh_rides = iter([[(holders[i % 50].ride_code(now), 200) for i in range(n)] for _ in range(rounds + 1)])

    public_key = issuer.public_key()
    # The baseline verifies n distinct signatures, as a terminal does. One signature verified over and
    # over runs faster: Ed25519 verification branches on its inputs, and the branch predictor learns a
    # repeated input (measured alongside, for comparison).
    signed_size = len(decode(ankang[0]).signed)  # the bytes an Ankang code's signature covers
    messages = [os.urandom(signed_size) for _ in range(n)]
    pairs = [(issuer.sign(m), m) for m in messages]
    signature, message = pairs[0]
    # libsodium verifies signature || message, in one buffer: built here, outside the timed loop.
    raw_key, signed_messages = raw(issuer), [sig + msg for sig, msg in pairs]
    repeated = signed_messages[0]
    # The device signatures of the ride codes, under their phones' keys (a ride code's signed part is longer).
    ride_codes = [decode(p) for p in rides]
    ride_signed = [(c.signature + c.signed, c.certificate.device_public_key) for c in ride_codes]  # type: ignore[union-attr]

    def raw_sodium() -> int:
        sodium_open, null = lib.crypto_sign_open, ffi.NULL
        for sm in signed_messages:
            if sodium_open(null, null, sm, len(sm), raw_key) != 0:
                raise AssertionError("bad signature")
        return n

    def raw_sodium_ride() -> int:
        sodium_open, null = lib.crypto_sign_open, ffi.NULL
        for sm, key in ride_signed:
            if sodium_open(null, null, sm, len(sm), key) != 0:
                raise AssertionError("bad signature")
        return n

    def raw_sodium_repeated() -> int:
        sodium_open, null = lib.crypto_sign_open, ffi.NULL
        for _ in range(n):
            if sodium_open(null, null, repeated, len(repeated), raw_key) != 0:
                raise AssertionError("bad signature")
        return n

    def raw_verify() -> int:
        verify = public_key.verify
        for sig, msg in pairs:
            verify(sig, msg)
        return n

    def raw_verify_repeated() -> int:
        verify = public_key.verify
        for _ in range(n):
            verify(signature, message)
        return n

    def verify_ankang() -> int:
        for payload in ankang:
            verifier.verify(payload, now)
        return n

    def verify_many_ankang() -> int:
        items = [(payload, now) for payload in ankang]
        for i in range(0, n, args.batch):
            verifier.verify_many(items[i : i + args.batch])
        return n

    def verify_ride() -> int:
        for payload in rides:
            verifier.verify(payload, now)
        return n

    def verify_many_ride() -> int:
        items = [(payload, now) for payload in rides]
        for i in range(0, n, args.batch):
            verifier.verify_many(items[i : i + args.batch])
        return n

    def verify_ride_cold() -> int:
        cold = Verifier(trust_list)  # no certificate cached: two Ed25519 verifications per code
        for payload in rides[:50]:
            cold.verify(payload, now)
        return 50

    clock = [float(now)]
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as folder:
        terminal = Terminal(
            root_public_keys={"root": raw(root)},
            db_path=str(Path(folder) / "terminal.sqlite"),
            clock=lambda: clock[0],
            clock_source="ntp",
            replay_window_s=0,
        )
        terminal.load_trust_list(envelope)
        # Ride codes go to a bus terminal of their own, whose clock stays at the codes' time (the clock above
        # moves on every round), and which has seen every phone once before the rounds start.
        bus = Terminal(
            root_public_keys={"root": raw(root)},
            db_path=str(Path(folder) / "bus.sqlite"),
            clock=lambda: float(now),
            clock_source="ntp",
        )
        bus.load_trust_list(envelope)
        bus.scan_many(next(fresh_rides)[:50])
        batch = args.batch
        scans = [(p, 0) for p in ankang]

        def terminal_scan() -> int:
            # The clock moves on between rounds, so a code seen in an earlier round is not a repeat
            # within the (zero) replay window and every scan pays for its full verification.
            clock[0] += 1
            for i in range(0, n, batch):
                terminal.scan_many(scans[i : i + batch])
            return n

        def terminal_submit() -> int:
            # A reader loop: submit the group that queued up, then answer the previous one, so each
            # group's fsync runs on the commit thread while the next group is verified.
            clock[0] += 1
            pending = None
            for i in range(0, n, batch):
                submitted = terminal.submit_many(scans[i : i + batch])
                if pending is not None:
                    pending.result()
                pending = submitted
            assert pending is not None
            pending.result()
            return n

        def terminal_submit_ride() -> int:
            ride_scans = next(fresh_rides)
            pending = None
            accepted = 0
            for i in range(0, n, batch):
                submitted = bus.submit_many(ride_scans[i : i + batch])
                if pending is not None:
                    accepted += sum(d.result == "accept" for d in pending.result())
                pending = submitted
            assert pending is not None
            accepted += sum(d.result == "accept" for d in pending.result())
            if accepted != n:
                raise AssertionError(f"{n - accepted} fresh ride codes were refused")
            return n

        def terminal_scan_single() -> int:
            clock[0] += 1
            for i in range(200):
                terminal.scan(ankang[i])
            return 200

        results = rates(
            {
                "raw Ed25519 verify, distinct signatures (libsodium)": raw_sodium,
                "raw Ed25519 verify, ride codes' device signatures (libsodium)": raw_sodium_ride,
                "raw Ed25519 verify, one signature repeated (libsodium)": raw_sodium_repeated,
                "raw Ed25519 verify, distinct signatures (cryptography)": raw_verify,
                "raw Ed25519 verify, one signature repeated (cryptography)": raw_verify_repeated,
                "Verifier.verify, Ankang code": verify_ankang,
                f"Verifier.verify_many, Ankang code, {args.batch} per call": verify_many_ankang,
                f"Terminal.scan_many, Ankang code, {batch} per durable commit": terminal_scan,
                f"Terminal.submit_many, Ankang code, {batch} per commit, pipelined": terminal_submit,
                "Terminal.scan, Ankang code, one durable commit per scan": terminal_scan_single,
                "Verifier.verify, ride code, certificate cached": verify_ride,
                f"Verifier.verify_many, ride code, certificate cached, {args.batch} per call": verify_many_ride,
                f"Terminal.submit_many, ride code, 200 fen, {batch} per commit": terminal_submit_ride,
                "Verifier.verify, ride code, certificate not cached": verify_ride_cold,
            },
            rounds,
        )
        terminal.close()
        bus.close()

    sodium = results["raw Ed25519 verify, distinct signatures (libsodium)"]
    openssl = results["raw Ed25519 verify, distinct signatures (cryptography)"]
    print(
        f"python {sys.version.split()[0]}, n={n}, rounds={rounds}, median per figure; ratios to raw libsodium, raw OpenSSL"
    )
    for name, value in results.items():
        print(f"{name:64s} {value:10.0f} /s   {value / sodium:5.2f}x  {value / openssl:5.2f}x")
    ride_sodium = results["raw Ed25519 verify, ride codes' device signatures (libsodium)"]
    verify_many = (
        results[f"Verifier.verify_many, Ankang code, {args.batch} per call"] / sodium,
        results[f"Verifier.verify_many, ride code, certificate cached, {args.batch} per call"] / ride_sodium,
    )
    full_path = (
        results[f"Terminal.submit_many, Ankang code, {batch} per commit, pipelined"] / sodium,
        results[f"Terminal.submit_many, ride code, 200 fen, {batch} per commit"] / ride_sodium,
    )
    print(
        "\noffline verification on the terminal (verify_many, as submit_many runs it) vs raw libsodium, target 0.9x:"
        f" Ankang {verify_many[0]:.2f}x, ride {verify_many[1]:.2f}x"
        "\nwhole scan path with each record durable in SQLite (submit_many), for comparison:"
        f" Ankang {full_path[0]:.2f}x, ride {full_path[1]:.2f}x"
    )


if __name__ == "__main__":
    main()
