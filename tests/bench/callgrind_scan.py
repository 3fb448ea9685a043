"""Benchmark that the machine's load cannot move: instructions the server process executes per online scan.

    .venv/bin/python tests/bench/callgrind_scan.py [--root TREE] [scans] [scene kind]

Runs `yima serve --workers 1` of TREE (default: this checkout; another commit's worktree compares old and new with
the same script) under `valgrind --tool=callgrind` with instrumentation off, against a fresh database on the test
PostgreSQL and Redis. After a warm-up, it zeroes the counters, turns instrumentation on, sends `scans` distinct
valid Ankang codes one at a time (the same fixed batch shape on every run), turns it off and reads the total
instruction count (Ir) of the server process for that window: the whole scan path in Python and C, the durable
record's statement included (PostgreSQL's own work is another process and not counted). Wall-clock benchmarks on a
shared machine move by tens of percent with its load; this count moves by well under one.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

IDLE_S = 20.0


def _counted(out_file: Path) -> int:
    """Ir of the dump callgrind wrote for the instrumented window (its `totals:` or `summary:` line)."""
    dumps = sorted(out_file.parent.glob(out_file.name + "*"), key=lambda p: p.stat().st_mtime)
    counts = [
        int(n)
        for dump in dumps
        for n in re.findall(r"^totals: (\d+)", dump.read_text(errors="replace"), re.M)
    ]
    return max(counts, default=0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    parser.add_argument("scans", type=int, nargs="?", default=500)
    parser.add_argument("kind", nargs="?", default="pharmacy")
    args = parser.parse_args()
    root = args.root.resolve()
    sys.path.insert(0, str(root))

    from yima_sdk.codes import issue_ankang_code

    from server.security.master_key import new_master_key_text
    from tests.bench._harness import create_database, drop_database, free_port, prepare, run, server_env

    master_key, namespace = new_master_key_text(), f"yimacg-{secrets.token_hex(4)}:"
    name, url = run(create_database())
    workdir = Path(tempfile.mkdtemp(prefix="yima-callgrind-"))
    out_file = workdir / "callgrind.out"
    proc = None
    try:
        port = free_port()
        seeded = run(prepare(url, master_key, namespace, port, residents=50, terminals=4, kind=args.kind))
        key, refs, residents = seeded["issuer_key"], seeded["refs"], seeded["residents"]
        tokens = seeded["terminal_tokens"]
        now = int(time.time())
        warm = 100
        payloads = [
            issue_ankang_code(
                key.private_key,
                bytes.fromhex(key.kid),
                341822,
                refs.seal(residents[i % len(residents)], 0, secrets.randbelow(2**31)),
                "green",
                now,
                3600,
            )
            for i in range(warm + args.scans)
        ]
        env = {**server_env(url, master_key, port, namespace), "PYTHONHASHSEED": "0"}
        proc = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out_file}",
                str(root / ".venv/bin/python"),
                str(root / ".venv/bin/yima"),
                "serve",
                # test mode; commits before the flag existed ran test mode without it
                *(
                    ["--allow-development"]
                    if "allow-development" in (root / "server/cli.py").read_text()
                    else []
                ),
                "--workers",
                "1",
            ],
            env=env,
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "server.log").open("wb"),
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 600
        while True:
            try:
                with urllib.request.urlopen(base + "/v1/trust-list", timeout=5):
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise SystemExit((workdir / "server.log").read_text()[-3000:]) from None
                time.sleep(1)

        def scan(i: int) -> None:
            body = f'{{"payload":"{payloads[i]}","scanned_at":{int(time.time() * 1000)}}}'.encode()
            request = urllib.request.Request(
                base + "/v1/scans",
                data=body,
                headers={
                    "authorization": f"Bearer {tokens[i % len(tokens)]}",
                    "content-type": "application/json",
                },
            )
            with urllib.request.urlopen(request, timeout=120) as answer:
                assert b'"accept"' in answer.read(), i

        for i in range(warm):
            scan(i)

        def window(work: Callable[[], None]) -> tuple[int, float]:
            """Instructions the server executes while `work` runs, and the seconds it took."""
            pid = str(proc.pid)
            for command in (["-z", pid], ["-i", "on", pid]):
                subprocess.run(["callgrind_control", *command], check=True, capture_output=True)
            started = time.perf_counter()
            work()
            elapsed = time.perf_counter() - started
            for command in (["-i", "off", pid], ["-d", pid]):
                subprocess.run(["callgrind_control", *command], check=True, capture_output=True)
            counted = _counted(out_file)
            for dump in out_file.parent.glob(out_file.name + ".*"):
                dump.unlink()
            return counted, elapsed

        # The server's own timers (pub/sub, periodic reloads) run during the window too, more of them the longer
        # a loaded machine makes it: measure their rate while idle and take it out.
        idle, idle_s = window(lambda: time.sleep(IDLE_S))
        busy, busy_s = window(lambda: [scan(i) for i in range(warm, warm + args.scans)])
        per_scan = (busy - idle / idle_s * busy_s) / args.scans
        print(
            f"{root.name} {args.kind}: {args.scans} scans, {busy:,} instructions in the server process "
            f"({busy_s:.0f} s under callgrind; idle {idle / idle_s:,.0f}/s), {per_scan:,.0f} per scan"
        )
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        run(drop_database(name))
        for leftover in workdir.iterdir():
            leftover.unlink()
        os.rmdir(workdir)


if __name__ == "__main__":
    main()
