"""Benchmark: POST /v1/scans/batch on `yima serve --workers 1`, 10,000 offline ride records (100 devices x 100 rides).

Every record is re-verified on the server (device certificate from the cache after its first use, device
signature every time), its ride code spent durably, its charge settled in the one-card ledger, its decision stored.
Runs against a fresh database on the test PostgreSQL and Redis; prints records/s for uploads sent one after another
and two at a time, and, side by side in this process, the verify-only rate of the same records.

    .venv/bin/python tests/bench/bench_batch.py [--devices 100] [--rides 100] [--batch 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

# Run as a script, this folder comes first on sys.path and its server.py would shadow the server package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from yima_sdk.codes import Verifier
from yima_sdk.holder import Holder

from server.app import create_app
from server.onecard.payments.adapters import LocalPaymentProvider
from server.settings import load_settings
from server.wire import b64url, b64url_decode
from tests.bench.bench_onecard_settlement import id_number
from tests.bench.server import yima_serve


async def seed(
    env: dict[str, str], port: int, devices: int, rides: int, runs: int, terminals: int
) -> dict[str, Any]:
    """Funded one-card accounts with a certified device each, bus terminals with tokens; through the app's own
    services in this process, on the server's database. Certificates allow every ride the bench sends."""
    app = create_app(load_settings({**env, "YIMA_PORT": str(port)}))  # the token audience: its URL
    out: dict[str, Any] = {"holders": [], "tokens": []}
    async with app.lifespan():
        state = app.state
        db, onecard, topups, identity = state.core.db, state.onecard, state.onecard_topups, state.identity
        onecard.config = msgspec.structs.replace(
            onecard.config,
            max_offline_uses=rides,
            max_offline_amount_fen=rides * 200,
            max_active_certificates=1,
        )
        provider = onecard.payments
        assert isinstance(provider, LocalPaymentProvider)
        for i in range(devices * runs):
            async with db.transaction() as conn:
                account = await identity.account_id_for_phone(conn, f"138{i:08d}", create=True)
                await identity.set_identity(conn, account, "测试员", id_number(i))
                await onecard.record_issued_card(conn, id_number(i), f"C{i:08d}")
                await onecard.open_account(conn, account, f"C{i:08d}")
                order = await topups.create(conn, account, 100_000, f"bench-batch-{i:06d}")
            provider.simulator.pay(order.order_no)
            # handled here; popped so the simulator does not also post it to the server (whose unread stderr
            # would fill with "notification refused" warnings until its log writes block)
            delivery = provider.simulator.deliveries.pop()
            await topups.handle_notification(provider.simulator._signed_headers(delivery.body), delivery.body)
            holder = Holder.generate()
            async with db.transaction() as conn:
                issued = await onecard.offline.register_device(
                    conn, account, b64url(holder.device_public_key)
                )
            holder.install_certificate(b64url_decode(issued.certificate))
            out["holders"].append(holder)
        async with db.transaction() as conn:
            for _ in range(terminals * runs):
                key = Ed25519PrivateKey.generate()
                raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
                info = await state.terminals.registry.register(
                    conn,
                    actor="bench",
                    name="bench bus",
                    kind="bus",
                    scene="bench-line-1",
                    public_key=base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
                )
                token, _ = await state.core.tokens.issue(
                    subject=info.id, kind="terminal", roles=[], session_id=f"terminal:{info.id}:1"
                )
                out["tokens"].append(token)
        out["verifier"] = Verifier(state.credentials.trust.verifier.trust_list)
    return out


def batches(holders: list[Holder], rides: int, size: int) -> list[bytes]:
    """Rides interleaved across devices, as a bus line sees them, cut into uploads of `size` records."""
    now = time.time() - 30
    records = []
    for r in range(rides):
        for h in holders:
            at = now - (rides - r) * 0.01
            records.append(
                {
                    "record_id": str(uuid.uuid4()),
                    "payload": h.ride_code(at),
                    "scanned_at": int(at * 1000) + 1000,
                    "clock_source": "ntp",
                    "amount_fen": 200,
                    "local_result": "accept",
                    "local_reason": None,
                }
            )
    return [
        msgspec.json.encode({"batch_id": str(uuid.uuid4()), "records": records[i : i + size]})
        for i in range(0, len(records), size)
    ]


async def upload(base: str, bodies: list[bytes], tokens: list[str], concurrency: int) -> float:
    queue = list(enumerate(bodies))
    accepted = 0

    async def sender(client: httpx.AsyncClient) -> None:
        nonlocal accepted
        while queue:
            i, body = queue.pop(0)
            r = await client.post(
                "/v1/scans/batch",
                content=body,
                headers={
                    "authorization": f"Bearer {tokens[i % len(tokens)]}",
                    "content-type": "application/json",
                },
            )
            r.raise_for_status()
            # One parse with msgspec: the load generator shares the machine's two cores with the server.
            results = msgspec.json.decode(r.content)["results"]
            bad = {x["reason"] for x in results if x["status"] != "accepted"}
            assert not bad, bad
            accepted += len(results)

    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        started = time.perf_counter()
        await asyncio.gather(*(sender(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return elapsed


def verify_rate(verifier: Verifier, bodies: list[bytes]) -> float:
    records = [r for b in bodies for r in msgspec.json.decode(b)["records"]]
    started = time.perf_counter()
    for r in records:
        verifier.verify(r["payload"], r["scanned_at"] / 1000)
    return len(records) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--rides", type=int, default=100)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    a = parser.parse_args()
    terminals = 10
    n = a.devices * a.rides
    with yima_serve(workers=1) as server:
        # sequential runs, then concurrent runs (two uploads in flight), each on fresh devices and terminals
        seeded = asyncio.run(seed(server.env, server.port, a.devices, a.rides, 2 * a.runs + 1, terminals))
        holders, tokens = seeded["holders"], seeded["tokens"]

        def workload(run: int) -> tuple[list[bytes], list[str]]:
            return (
                batches(holders[run * a.devices : (run + 1) * a.devices], a.rides, a.batch),
                tokens[run * terminals : (run + 1) * terminals],
            )

        warm, warm_tokens = workload(0)
        asyncio.run(upload(server.url, warm[:2], warm_tokens, 1))  # warm-up: caches, connections
        rates: dict[int, list[float]] = {1: [], 2: []}
        verify: list[float] = []
        run = 1
        for concurrency in (1, 2):
            for _ in range(a.runs):
                bodies, batch_tokens = workload(run)
                run += 1
                verify.append(verify_rate(Verifier(seeded["verifier"].trust_list), bodies))
                rates[concurrency].append(
                    n / asyncio.run(upload(server.url, bodies, batch_tokens, concurrency))
                )
    print(
        f"POST /v1/scans/batch, yima serve --workers 1: {n:,} ride records per run ({a.devices} devices x {a.rides})"
    )
    print(
        f"  uploads of {a.batch} records, {terminals} bus terminals, every record settled; medians of {a.runs} runs"
    )
    print(f"  one upload at a time    {statistics.median(rates[1]):10,.0f} records/s")
    print(f"  two uploads in flight   {statistics.median(rates[2]):10,.0f} records/s")
    print(
        f"  verify only, this proc  {statistics.median(verify):10,.0f} records/s (fresh certificate cache per run)"
    )


if __name__ == "__main__":
    main()
