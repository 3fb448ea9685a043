"""A local stand-in for the SMS gateway that behaves like one: it checks signatures and timestamps, honours
idempotency keys, and fails on request (`fail_next`, `fail_rate`, `refuse_numbers`), so the adapter's retries and
error paths are exercised for real over HTTP.

Run it alone: `python -m server.identity.sms_simulator --port 9099 --secret dev`.
"""

from __future__ import annotations

import argparse
import hmac
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.params import FromQuery

from server.identity.sms import sign


@dataclass
class SimulatorState:
    secret: str
    fail_next: int = 0
    fail_rate: float = 0.0
    refuse_numbers: set[str] = field(default_factory=set)
    max_skew_s: int = 300
    delivered: list[dict[str, Any]] = field(default_factory=list)
    by_key: dict[str, str] = field(default_factory=dict)
    attempts: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(7))


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    to: str
    template: str
    params: dict[str, str]


def create_simulator(state: SimulatorState) -> Litestar:
    @post("/v1/messages", status_code=200)
    async def send(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        state.attempts += 1
        raw = await request.body()
        timestamp = request.headers.get("x-timestamp", "")
        signature = request.headers.get("x-signature", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > state.max_skew_s:
            return Response({"error": "stale_timestamp"}, status_code=401)
        if not hmac.compare_digest(sign(state.secret, timestamp, raw), signature):
            return Response({"error": "bad_signature"}, status_code=401)
        key = request.headers.get("idempotency-key", "")
        if not key:
            return Response({"error": "idempotency_key_required"}, status_code=400)
        if key in state.by_key:
            return Response({"message_id": state.by_key[key]}, status_code=200)
        if state.fail_next > 0:
            state.fail_next -= 1
            return Response({"error": "temporarily_unavailable"}, status_code=503)
        if state.fail_rate and state.rng.random() < state.fail_rate:
            return Response({"error": "temporarily_unavailable"}, status_code=503)
        try:
            body = msgspec.json.decode(raw, type=_Body)
        except msgspec.DecodeError:
            return Response({"error": "bad_request"}, status_code=400)
        if body.to in state.refuse_numbers:
            return Response({"error": "number_blocked"}, status_code=422)
        message_id = "sim-" + secrets.token_hex(8)
        state.by_key[key] = message_id
        state.delivered.append(
            {"to": body.to, "template": body.template, "params": body.params, "id": message_id}
        )
        return Response({"message_id": message_id}, status_code=200)

    @get("/v1/messages")
    async def delivered(to: FromQuery[str | None] = None) -> list[dict[str, Any]]:
        return [m for m in state.delivered if to is None or m["to"] == to]

    return Litestar([send, delivered])


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9099)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    args = parser.parse_args()
    app = create_simulator(SimulatorState(secret=args.secret, fail_rate=args.fail_rate))
    uvicorn.run(app, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
