"""HTTP baseline: GET /health and the login path (OTP request, token refresh) on `yima serve --workers 2`.

    .venv/bin/python tests/bench/bench_http.py [--duration 10] [--connections 64]

Starts a real server against the local PostgreSQL (fresh database) and Redis, loads it from two other processes
with keep-alive connections, and prints throughput with p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.loadgen import http_request, run_load
from tests.bench.server import yima_serve


async def _sessions(env: dict[str, str], count: int) -> list[str]:
    """Log `count` accounts in through the real OTP flow (in-process app on the same database) for refresh chains."""
    from server.app import create_app
    from server.identity.sms import ConsoleSender
    from server.settings import load_settings

    os.environ.update({k: v for k, v in env.items() if k.startswith("YIMA_")})
    sender = ConsoleSender()
    app = create_app(load_settings(), sms=sender)
    tokens = []
    async with app.lifespan():
        identity = app.state.identity
        for _ in range(count):
            phone = "139" + "".join(secrets.choice("0123456789") for _ in range(8))
            await identity.request_otp(phone, "127.0.0.1")
            pair = await identity.exchange_otp(phone, sender.messages_for(phone)[-1].params["code"])
            tokens.append(pair.refresh_token)
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    with yima_serve(workers=2) as server:
        host = f"{server.host}:{server.port}"
        health = http_request("GET", "/health", host=host)
        live = http_request("GET", "/health/live", host=host)
        print(
            f"yima serve --workers 2 at {server.url}; {args.connections} connections, {args.duration:.0f} s each"
        )
        print(
            run_load(
                server.host,
                server.port,
                lambda i, prev: live,
                connections=args.connections,
                duration_s=args.duration,
            ).line("GET /health/live")
        )
        print(
            run_load(
                server.host,
                server.port,
                lambda i, prev: health,
                connections=args.connections,
                duration_s=args.duration,
            ).line("GET /health (PostgreSQL + Redis)")
        )

        def otp(i: int, prev: bytes | None) -> bytes:
            phone = "137" + "".join(secrets.choice("0123456789") for _ in range(8))
            return http_request(
                "POST",
                "/v1/auth/otp",
                host=host,
                body=json.dumps({"phone": phone}).encode(),
                headers={"content-type": "application/json"},
            )

        print(
            run_load(
                server.host, server.port, otp, connections=args.connections, duration_s=args.duration
            ).line("POST /v1/auth/otp")
        )

        refresh_tokens = asyncio.run(_sessions(server.env, args.connections))

        def refresh(i: int, prev: bytes | None) -> bytes:
            if prev is not None:
                refresh_tokens[i] = json.loads(prev)["refresh_token"]
            body = json.dumps({"refresh_token": refresh_tokens[i]}).encode()
            return http_request(
                "POST", "/v1/auth/refresh", host=host, body=body, headers={"content-type": "application/json"}
            )

        print(
            run_load(
                server.host,
                server.port,
                refresh,
                connections=args.connections,
                duration_s=args.duration,
                processes=1,
            ).line("POST /v1/auth/refresh (rotation)")
        )


if __name__ == "__main__":
    main()
