"""A small HTTP/1.1 server (asyncio streams, one request per connection) that serves a simulated app's
routes on 127.0.0.1, plus `/_sim/*` endpoints to look at the simulated platform and flip its switches.

    GET  /<path>                          the app's route, as fixture resident `x-yima-user` (default: --user)
    GET  /v1/miniapps/<id>/api/<path>     the same, under the production gateway's path
    GET  /, /miniapps/<id>/ui/...         the app's page in a simulated shell (see _pages.py)
    GET  /_sim/state                      layers (and which are missing), switches, inbox, payments, storage, logs
    POST /_sim/switches                   {"consent_denied": true, ...}
    POST /_sim/scan                       {"scene_kind": "clinic", "user": "alice", "amount_fen": 200, "unit": ..., "issuer": ..., "stop": ..., "tap": ..., "holder": ..., "mode": ..., "terminal_admitted": ...}
    POST /_sim/staff                      {"user": "carol", "role": "doctor", "unit": "clinic:c1", "granted": true}
    POST /_sim/payments/<id>/confirm      (or /decline) answer a pending confirmation sheet
    POST /_sim/advance                    {"hours": 2}: move the clock, run the jobs that fall due; the runs
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msgspec

from yima_sdk.errors import YimaError
from yima_sdk.simulator._host import AsyncSimulator
from yima_sdk.simulator._pages import Pages, with_cors
from yima_sdk.simulator._responses import SimResponse, json_response, problem

__all__ = ["serve_http"]

_MAX_HEAD = 64 * 1024
_MAX_BODY = 4 * 1024 * 1024
_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    504: "Gateway Timeout",
}


async def serve_http(sim: AsyncSimulator, port: int = 8790, *, user: str | None = "alice") -> asyncio.Server:
    """Start serving `sim` on 127.0.0.1:`port` (0: any free port); returns the started server."""

    pages = Pages(sim, user)

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            response = await _handle(sim, reader, user, pages)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError) as exc:
            response = problem(400, "http.bad_request", str(exc))
        try:
            writer.write(_render(response))
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    return await asyncio.start_server(on_connection, "127.0.0.1", port, limit=_MAX_HEAD)


async def _handle(
    sim: AsyncSimulator, reader: asyncio.StreamReader, default_user: str | None, pages: Pages
) -> SimResponse:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if length > _MAX_BODY:
        return problem(413, "http.too_large", f"bodies are limited to {_MAX_BODY} bytes")
    body = await reader.readexactly(length) if length else b""
    url = urlsplit(target)
    path = url.path
    if path.startswith("/_sim/"):
        return await _control(sim, method, path, body)
    page = await pages.handle(method, path, headers, body)
    if page is not None:
        return page
    gateway = f"/v1/miniapps/{sim.manifest.id}/api"
    if path.startswith(gateway + "/"):
        path = path[len(gateway) :]
    session_user = pages.session_user(headers.get("authorization", ""))
    if session_user is not None:  # a page's call, with the app session the simulated shell gave it
        headers.pop("x-yima-user", None)
        for hop in ("host", "connection", "content-length", "authorization", "cookie", "origin"):
            headers.pop(hop, None)
        answer = await sim.request(
            method, path, user=session_user, body=body, headers=headers, query=dict(parse_qsl(url.query))
        )
        return with_cors(answer)
    user = headers.pop("x-yima-user", default_user)
    if user in ("", "anonymous"):
        user = None
    if user is not None and user not in sim.platform.users:
        return problem(
            400, "sim.unknown_user", f"no fixture user {user!r}; known: {sorted(sim.platform.users)}"
        )
    for hop in ("host", "connection", "content-length", "authorization", "cookie"):
        headers.pop(hop, None)  # the gateway authenticates and strips these before the app sees the request
    return await sim.request(
        method, path, user=user, body=body, headers=headers, query=dict(parse_qsl(url.query))
    )


async def _control(sim: AsyncSimulator, method: str, path: str, body: bytes) -> SimResponse:
    payload: Any = msgspec.json.decode(body) if body else {}
    if method == "GET" and path == "/_sim/state":
        return json_response(
            {
                "app": sim.manifest.key,
                "layers": [msgspec.to_builtins(layer) for layer in sim.layers],
                "missing_layers": sim.missing_layers,
                "switches": dataclasses.asdict(sim.switches),
                "users": {name: sim.user_id(name) for name in sim.platform.users},
                "inbox": sim.platform.inbox,
                "payments": list(sim.platform.payments.values()),
                "storage": {k: d.value for k, d in sim.platform.space.docs.items()},
                "counters": sim.platform.space.counters,
                "logs": sim.logs[-100:],
                "now": sim.platform.clock(),
                "jobs": [dataclasses.asdict(job) for job in sim.platform.jobs.values()],
                "staff": {
                    name: [
                        {"role": role, "unit": unit}
                        for role, unit in sorted(held, key=lambda m: (m[0], m[1] or ""))
                    ]
                    for name, held in sim.platform.staff.items()
                },
            }
        )
    if method == "POST" and path == "/_sim/switches":
        for name, value in payload.items():
            if not hasattr(sim.switches, name):
                return problem(400, "sim.unknown_switch", f"no switch {name!r}")
            setattr(sim.switches, name, value)
        return json_response(dataclasses.asdict(sim.switches))
    if method == "POST" and path == "/_sim/scan":
        try:
            value = await sim.scan(
                payload["scene_kind"],
                user=payload.get("user", "alice"),
                scene_id=payload.get("scene_id", "scene-1"),
                mode=payload.get("mode", "online"),
                amount_fen=payload.get("amount_fen"),
                unit=payload.get("unit"),
                issuer=payload.get("issuer", 341822),
                stop=payload.get("stop"),
                tap=payload.get("tap", "on"),
                holder=payload.get("holder", "partner-rider"),
                terminal_admitted=payload.get("terminal_admitted"),
                terminal_reason=payload.get("terminal_reason"),
            )
        except YimaError as exc:
            return problem(422, exc.code, exc.message)
        except ValueError as exc:  # a malformed stop or tap, refused as production refuses it
            return problem(400, "scan.stop_invalid" if "stop" in str(exc) else "request.invalid", str(exc))
        return json_response({"lines": value})
    if method == "POST" and path == "/_sim/staff":
        # a staff grant (or, with "granted": false, its revocation), as an operator or the app's admin makes it
        try:
            change = sim.platform.grant_staff if payload.get("granted", True) else sim.platform.revoke_staff
            change(payload["user"], payload["role"], payload.get("unit"))
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            return problem(400, "sim.bad_staff", f"give user, role and optionally unit and granted: {exc}")
        return json_response(
            {"roles": msgspec.to_builtins(sim.platform.staff_roles(sim.user_id(payload["user"])))}
        )
    if method == "POST" and path == "/_sim/advance":
        units = ("days", "hours", "minutes", "seconds")
        if not isinstance(payload, dict) or not all(
            k in units and isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
            for k, v in payload.items()
        ):
            return problem(400, "sim.bad_advance", "give days, hours, minutes or seconds: numbers >= 0")
        runs = await sim.advance(**payload)
        return json_response(
            {"now": sim.platform.clock(), "runs": [msgspec.to_builtins(run) for run in runs]}
        )
    if method == "POST" and path.startswith("/_sim/payments/"):
        _, _, _, payment_id, action = path.split("/", 4)
        if payment_id not in sim.platform.payments or action not in ("confirm", "decline"):
            return problem(404, "sim.not_found", "no such payment or action")
        return json_response(sim.platform.confirm_payment(payment_id, accept=action == "confirm"))
    return problem(404, "sim.not_found", f"no simulator endpoint {method} {path}")


def _render(response: SimResponse) -> bytes:
    lines = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Status')}"]
    for name, value in response.headers.items():
        if name.lower() not in ("content-length", "connection") and "\r" not in value and "\n" not in value:
            lines.append(f"{name}: {value}")
    lines += [f"content-length: {len(response.body)}", "connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1", "replace") + response.body
