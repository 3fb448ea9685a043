"""Offline fare pricing beside offline verification on a bus terminal, one core, side by side in one run.

Run: .venv/bin/python tests/bench/bench_fares.py [--rounds 15] [--n 2000] [--batch 256]
Prints the median over interleaved rounds of each figure (rides per second): the terminal's offline verification
of ride codes (`Verifier.verify_many` in groups, as `Terminal.scan_many` runs it), the fare engine pricing the
same number of boardings (`yima_sdk.fares.FareSchedule.price`, the demo fare table of miniapps/bus with its staged
line, peak rule, transfers and caps, one `FareState` per phone), and the two one after the other. Target
(issue 20): pricing >= 0.9x the verification rate, so pricing is never a bus terminal's bottleneck.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from yima_sdk.codes import Verifier, issue_device_certificate
from yima_sdk.fares import FareSchedule, FareState, FareTable, Ride, Rider
from yima_sdk.holder import Holder
from yima_sdk.trust import TrustEntry, TrustList, build_trust_list

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "miniapps" / "bus"))
from bench_verify import GUANGDE, KEY_ID, rates, raw
from seed import TABLE

PHONES = 50


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    n, batch = args.n, args.batch
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    root, issuer = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    now = int(dt.datetime.now(dt.UTC).timestamp())
    entry = TrustEntry(
        GUANGDE, KEY_ID, 1, raw(issuer), frozenset({"ankang_code", "device_certificate"}), 0, 2**32 - 1
    )
    trust_list = TrustList.verify(build_trust_list([entry], 1, root, "root", now), {"root": raw(root)})
    verifier = Verifier(trust_list)
    holders = []
    for _ in range(PHONES):
        holder = Holder.generate()
        holder.install_certificate(
            issue_device_certificate(
                issuer, KEY_ID, GUANGDE, os.urandom(16), holder.device_public_key, now, 720, 65535, 10**6
            )
        )
        holders.append(holder)
    rides = [holders[i % PHONES].ride_code(now) for i in range(n)]
    for payload in rides[:PHONES]:
        verifier.verify(payload, now)  # every phone's certificate seen once, as on the route
    items = [(payload, now) for payload in rides]

    # The table as a terminal would hold it after its sync (msgpack), boardings through a day on three lines.
    table = msgspec.json.decode(msgspec.json.encode(TABLE), type=FareTable)
    schedule = FareSchedule(msgspec.msgpack.decode(msgspec.msgpack.encode([table]), type=list[FareTable]))
    start = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    lines = ["1", "2", "k2"]
    boardings = [
        Ride(
            ride_id=str(i),
            at=start + dt.timedelta(seconds=40 * i),
            line=lines[i % 3],
            board="bus-station" if i % 3 == 2 else None,
        )
        for i in range(n)
    ]
    rider = Rider()

    def verify() -> int:
        for i in range(0, n, batch):
            verifier.verify_many(items[i : i + batch])
        return n

    def price() -> int:
        states = [FareState()] * PHONES
        for i, ride in enumerate(boardings):
            phone = i % PHONES
            _, states[phone] = schedule.price(ride, rider, states[phone])
        return n

    def verify_and_price() -> int:
        states = [FareState()] * PHONES
        for i in range(0, n, batch):
            verifier.verify_many(items[i : i + batch])
            for j in range(i, min(i + batch, n)):
                phone = j % PHONES
                _, states[phone] = schedule.price(boardings[j], rider, states[phone])
        return n

    got = rates({"verify": verify, "price": price, "verify+price": verify_and_price}, args.rounds)
    for name, rate in got.items():
        print(f"{name:>14}: {rate:>10,.0f} rides/s")
    print(
        f"offline pricing vs offline verification of ride codes, target 0.9x: {got['price'] / got['verify']:.1f}x"
    )
    print(f"verification with pricing vs verification alone: {got['verify+price'] / got['verify']:.2f}x")


if __name__ == "__main__":
    main()
