"""Benchmark: offline batch settlement of 10,000 ride records on one worker, including server-side re-verification.

Runs against the real PostgreSQL (YIMA_TEST_ADMIN_DSN, default postgresql://postgres@127.0.0.1:5432/test) in a
fresh database, with the in-process payment simulator. Prints medians over several runs, side by side:
  - verify only (yima_sdk Verifier, two Ed25519 checks per record, certificate cache as on the server)
  - settle only, batch hook (settle_offline_charges: a fixed handful of statements per batch)
  - verify + settle (the batch endpoint's work)
  - the one-record hook (settle_offline_charge) called per record, on a 1,000-record slice, for comparison

    .venv/bin/python tests/bench/bench_onecard_settlement.py [--records 10000] [--devices 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

# Run as a script, this folder comes first on sys.path and its server.py would shadow the server package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import asyncpg
import msgspec
from yima_sdk.codes import Verifier
from yima_sdk.holder import Holder
from yima_sdk.trust import TrustEntry, TrustList

from server.app import create_app
from server.onecard.offline.settlement import OfflineCharge
from server.onecard.payments.adapters import LocalPaymentProvider
from server.security.master_key import new_master_key_text
from server.settings import load_settings
from server.wire import b64url, b64url_decode

ADMIN_DSN = os.environ.get("YIMA_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def id_number(i: int) -> str:
    from server.identity.id_number import check_digit

    first17 = f"341822{1950 + i % 50}{i % 12 + 1:02d}{i % 28 + 1:02d}{i % 1000:03d}"
    return first17 + check_digit(first17)


async def prepare(app, devices: int, per_device: int, base: int) -> tuple[list[str], list[Holder], Verifier]:
    state = app.state
    db, onecard, topups, identity = state.core.db, state.onecard, state.onecard_topups, state.identity
    onecard.config = msgspec.structs.replace(
        onecard.config,
        max_offline_uses=per_device * 2,
        max_offline_amount_fen=per_device * 2 * 200,
        max_active_certificates=devices,
    )
    provider = onecard.payments
    assert isinstance(provider, LocalPaymentProvider)
    holders = []
    for i in range(base, base + devices):
        async with db.transaction() as conn:
            account = await identity.account_id_for_phone(conn, f"139{i:08d}", create=True)
            await identity.set_identity(conn, account, "测试员", id_number(i))
            await onecard.record_issued_card(conn, id_number(i), f"B{i:08d}")
            await onecard.open_account(conn, account, f"B{i:08d}")
            order = await topups.create(conn, account, 100_000, f"bench-fund-{i:06d}")
        provider.simulator.pay(order.order_no)
        delivery = provider.simulator.deliveries[-1]
        await topups.handle_notification(provider.simulator._signed_headers(delivery.body), delivery.body)
        holder = Holder.generate()
        async with db.transaction() as conn:
            issued = await onecard.offline.register_device(conn, account, b64url(holder.device_public_key))
        holder.install_certificate(b64url_decode(issued.certificate))
        holders.append(holder)
    key = await state.core.keys.active("issuer")
    trust = TrustList(
        version=1,
        issued_at=0,
        root_key_id="bench",
        envelope=b"",
        document=b"",
        etag="",
        entries=(
            TrustEntry(
                onecard.config.issuer,
                bytes.fromhex(key.kid),
                1,
                key.public_raw,
                frozenset({"device_certificate", "ankang_code"}),
                0,
                2**32 - 1,
            ),
        ),
    )
    now = time.time()
    codes = [h.ride_code(now - 30) for _ in range(per_device) for h in holders]
    return codes, holders, Verifier(trust, ride_window_s=3600)


def verify_all(codes: list[str], verifier: Verifier, terminal: str) -> list[OfflineCharge]:
    out = []
    now = time.time()
    for i, code in enumerate(codes):
        v = verifier.verify(code, now)
        assert v.certificate_serial is not None
        out.append(
            OfflineCharge(
                v.subject_ref,
                v.certificate_serial,
                200,
                f"r{i:06d}",
                terminal,
                dt.datetime.fromtimestamp(v.issued_at, dt.UTC),
            )
        )
    return out


async def run(records: int, devices: int, runs: int) -> None:
    name = f"yima_bench_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = ADMIN_DSN.rpartition("/")[0]
    settings = load_settings(
        {},
        mode="test",
        database_url=f"{base}/{name}",
        master_key=new_master_key_text(),
        data_dir="/tmp",
        db_pool_min=1,
        db_pool_max=4,
    )
    app = create_app(settings)
    try:
        async with app.lifespan():
            per_device = records // devices
            # Each run settles fresh records (new terminal id) against the same devices: limits allow 2 runs' worth
            # per certificate, so give every run its own devices.
            timings: dict[str, list[float]] = {"verify": [], "settle": [], "total": []}
            for r in range(runs):
                codes, _, verifier = await prepare(app, devices, per_device, base=r * devices)
                t0 = time.perf_counter()
                charges = verify_all(codes, verifier, f"bus-{r}")
                t1 = time.perf_counter()
                async with app.state.core.db.transaction() as conn:
                    results = await app.state.onecard.settle_offline_charges(conn, charges)
                t2 = time.perf_counter()
                assert all(x.status == "settled" for x in results), {x.reason for x in results}
                timings["verify"].append(t1 - t0)
                timings["settle"].append(t2 - t1)
                timings["total"].append(t2 - t0)
            codes, _, verifier = await prepare(app, 10, 100, base=runs * devices)
            charges = verify_all(codes, verifier, "bus-single")
            t0 = time.perf_counter()
            async with app.state.core.db.transaction() as conn:
                for c in charges:
                    await app.state.onecard.offline.settle_offline_charge(
                        conn, **{f: getattr(c, f) for f in c.__slots__}
                    )
            single = time.perf_counter() - t0
        n = per_device * devices
        print(f"records per batch: {n} ({devices} devices x {per_device}), runs: {runs}")
        for label, key in [
            ("verify only", "verify"),
            ("settle only (batch hook)", "settle"),
            ("verify + settle", "total"),
        ]:
            median = statistics.median(timings[key])
            print(f"  {label:28s} median {median * 1000:8.1f} ms  = {n / median:10,.0f} records/s")
        print(
            f"  {'per-record hook (1,000)':28s} total  {single * 1000:8.1f} ms  = {len(charges) / single:10,.0f} records/s"
        )
        print(
            f"  batch/per-record speed-up: {(n / statistics.median(timings['settle'])) / (len(charges) / single):.1f}x"
        )
    finally:
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    a = parser.parse_args()
    asyncio.run(run(a.records, a.devices, a.runs))
