"""Benchmark: `GET /v1/me/codes/ankang` with 2 workers, 200 residents, 64 connections.

.venv/bin/python tests/bench/bench_ankang.py [seconds]
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

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


def main() -> None:
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    master_key, namespace = new_master_key_text(), f"yimabench-{secrets.token_hex(4)}:"
    name, url = run(create_database())
    try:
        port = free_port()
        seeded = run(prepare(url, master_key, namespace, port, residents=200, terminals=1, kind="clinic"))
        requests = [
            ("GET", "/v1/me/codes/ankang", {"Authorization": f"Bearer {t}"}, "")
            for t in seeded["resident_tokens"]
        ]
        env = server_env(url, master_key, port, namespace)
        with running_server(env) as base:
            wrk(base + "/v1/me/codes/ankang", lua_round_robin(requests), connections=64, seconds=2)  # warm-up
            result = wrk(
                base + "/v1/me/codes/ankang", lua_round_robin(requests), connections=64, seconds=seconds
            )
        print_table(
            [
                (
                    "GET /v1/me/codes/ankang (2 workers, 64 conns)",
                    f"{result['rps']:,.0f}/s (target >= 6,000)",
                ),
                ("  p50 / p99", f"{result['p50']:.1f} ms / {result['p99']:.1f} ms (target p99 <= 20 ms)"),
                ("  non-2xx answers", str(result["non_2xx"])),
            ]
        )
    finally:
        run(drop_database(name))


if __name__ == "__main__":
    main()
