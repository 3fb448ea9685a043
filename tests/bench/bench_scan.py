"""Benchmark: raw Ed25519 verify rate of one core vs `POST /v1/scans` on the full path (2 workers, 64 terminals).

The raw rate is OpenSSL's through `cryptography`, the baseline the target was set against; libsodium's, which
the server verifies with since it is twice as fast here, is printed beside it with its ratio.

    .venv/bin/python tests/bench/bench_scan.py [seconds] [scene kind]

Starts `yima serve --workers 2` against a fresh database on the test PostgreSQL and Redis; wrk drives the load from
its own process. Every scan is a distinct, valid Ankang code (clinic scene), so each one runs decode, signature,
time window, revocation, the shared replay guard, policy and the durable group-committed record. With the scene
kind `pharmacy` (a `once` scene) every scan also spends its code: the durable claim in the record's statement.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from nacl._sodium import ffi, lib
from yima_sdk.codes import issue_ankang_code

from server.credentials.rendering import qr_version
from server.security.master_key import new_master_key_text
from tests.bench._harness import (
    create_database,
    drop_database,
    free_port,
    lua_round_robin,
    prepare,
    print_table,
    run,
    running_server,
    server_env,
    wrk,
)


def raw_verify_rate(seconds: float = 2.0, *, distinct: bool = True, sodium: bool = False) -> float:
    """Ed25519 verifications per second on one core: distinct signatures (the baseline, as scans are), or
    one signature over and over (faster: verification branches on its inputs and the predictor learns them);
    with OpenSSL through `cryptography`, or with libsodium (what the server verifies with) called directly."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    messages = [os.urandom(84) for _ in range(2000 if distinct else 1)]
    pairs = [(key.sign(m), m) for m in messages] * (1 if distinct else 2000)
    raw_key = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    signed = [signature + message for signature, message in pairs]
    verify, sodium_open, null = public.verify, lib.crypto_sign_open, ffi.NULL
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        if sodium:
            for sm in signed:
                if sodium_open(null, null, sm, len(sm), raw_key) != 0:
                    raise AssertionError("bad signature")
        else:
            for signature, message in pairs:
                verify(signature, message)
        n += len(pairs)
    return n / (time.perf_counter() - start)


def main() -> None:
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    kind = sys.argv[2] if len(sys.argv) > 2 else "clinic"
    raw, repeated = raw_verify_rate(), raw_verify_rate(distinct=False)
    sodium = raw_verify_rate(sodium=True)
    master_key, namespace = new_master_key_text(), f"yimabench-{secrets.token_hex(4)}:"
    name, url = run(create_database())
    try:
        port = free_port()
        seeded = run(prepare(url, master_key, namespace, port, residents=200, terminals=64, kind=kind))
        key, refs = seeded["issuer_key"], seeded["refs"]
        now = int(time.time())
        # Every code once: enough for the warm-up and the run at up to ~12k scans/s.
        count = 2_000 + 12_000 * seconds
        residents = seeded["residents"]
        payloads = [
            issue_ankang_code(
                key.private_key,
                bytes.fromhex(key.kid),
                341822,
                refs.seal(residents[i % len(residents)], 0, secrets.randbelow(2**31)),
                "green",
                now,
                600,
            )
            for i in range(count)
        ]
        tokens = seeded["terminal_tokens"]
        requests = [
            (
                "POST",
                "/v1/scans",
                {"Authorization": f"Bearer {tokens[i % len(tokens)]}", "Content-Type": "application/json"},
                f'{{"payload":"{p}","scanned_at":{now * 1000}}}',
            )
            for i, p in enumerate(payloads)
        ]
        env = server_env(url, master_key, port, namespace)
        with running_server(env) as base:
            wrk(base + "/v1/scans", lua_round_robin(requests[:2000]), connections=64, seconds=2)  # warm-up
            result = wrk(
                base + "/v1/scans", lua_round_robin(requests[2000:]), connections=64, seconds=seconds
            )
        print_table(
            [
                ("raw Ed25519 verify, 1 core", f"{raw:,.0f}/s (one signature repeated: {repeated:,.0f}/s)"),
                ("raw Ed25519 verify, 1 core, libsodium", f"{sodium:,.0f}/s (what the server verifies with)"),
                (f"POST /v1/scans (2 workers, 64 {kind} terminals)", f"{result['rps']:,.0f}/s"),
                ("  ratio to raw verify", f"{result['rps'] / raw:.2f} (target >= 0.5)"),
                ("  ratio to raw libsodium verify", f"{result['rps'] / sodium:.2f}"),
                ("  p50 / p99", f"{result['p50']:.1f} ms / {result['p99']:.1f} ms (target p99 <= 25 ms)"),
                ("  non-2xx answers", str(result["non_2xx"])),
                (
                    "QR version of an Ankang payload",
                    f"{qr_version(payloads[0])} ({len(payloads[0])} chars, EC level M)",
                ),
            ]
        )
    finally:
        run(drop_database(name))


if __name__ == "__main__":
    main()
