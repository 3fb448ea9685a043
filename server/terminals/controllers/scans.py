"""HTTP routes of scans: `POST /v1/scans` (a plain ASGI handler, below), offline batches, the resident's history.

`POST /v1/scans` is served by a plain ASGI handler.

The hottest route of the system: every terminal scan, online. Litestar's per-request work for a regular handler
(the request object, the kwargs model, the body stream, the response object) cost more than a fifth of a worker's
time at load; side by side in bench_scan a regular handler served 7,550-7,800 scans/s and this one 9,100-9,600
(docs/benchmarks.md). What every route gets still applies here: the request-context and access-control middlewares
(`opt=allow(TERMINAL)` on the handler), problem+json errors from `AppError` (Litestar's exception middleware wraps
ASGI handlers too), the app's body size limit.

The route's contract is declared once, by `scan_contract`: an ordinary handler signature whose only use is the
OpenAPI document (`server.openapi_contracts`). tests/terminals/test_scan_endpoint.py checks that the served route
keeps it: answers, status codes and error codes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, TypeAlias

import msgspec
from litestar import Controller, Request, Response, asgi, get, post
from litestar.di import NamedDependency
from litestar.exceptions import MethodNotAllowedException
from litestar.params import JSONBody, QueryParameter
from litestar.types import HTTPResponseStartEvent, HTTPScope, Receive, Send
from yima_sdk._stops import valid_stop
from yima_sdk.terminal import ScanBatch, ScanBatchResult

from server.auth import allow
from server.auth.guards import ANY_ACCOUNT, TERMINAL
from server.deps import Caller, Db
from server.errors import BadRequest, PayloadTooLarge, Unavailable, raises
from server.terminals import errors, schemas
from server.terminals.events import AppPart
from server.terminals.service import Terminals

TerminalsDep: TypeAlias = NamedDependency[Terminals]
_batch_decoder = msgspec.json.Decoder(ScanBatch)
_batch_encoder = msgspec.json.Encoder()

_decoder = msgspec.json.Decoder(schemas.ScanRequest)
_encoder = msgspec.json.Encoder()
_JSON_HEADERS = [(b"content-type", b"application/json")]


@post(
    "/v1/scans",
    status_code=200,
    opt=allow(TERMINAL) | raises((BadRequest, "scan.stop_invalid"), (Unavailable, "service.db_unavailable")),
    operation_id="scan",
    summary="Scan",
    tags=["scans"],
)
async def scan_contract(data: JSONBody[schemas.ScanRequest]) -> schemas.ScanResponse:
    """Check a scanned code for this terminal's scene; the scan is stored before the answer."""
    raise NotImplementedError("documentation only: scan_endpoint serves this route")


async def _read_body(scope: HTTPScope, receive: Receive) -> bytes:
    configured = scope["litestar_app"].request_max_body_size
    limit = configured if isinstance(configured, int) else 1 << 20
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise PayloadTooLarge()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest("The client went away before the body arrived", code="request.malformed")
        chunk: bytes = message.get("body", b"")  # type: ignore[assignment]
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _scanned_at(value: datetime | int) -> datetime:
    if isinstance(value, int):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            raise BadRequest("scanned_at is out of range") from None
    if value.tzinfo is None:
        raise BadRequest("scanned_at needs a UTC offset")
    return value


def _miniapp(part: AppPart | None) -> schemas.MiniAppLines | None:
    if part is None:
        return None
    return schemas.MiniAppLines(part.app_id, list(part.lines), part.missing, part.reason, part.admit)


@asgi("/v1/scans", opt=allow(TERMINAL), copy_scope=False)
async def scan_endpoint(scope: HTTPScope, receive: Receive, send: Send) -> None:
    if scope["method"] != "POST":
        raise MethodNotAllowedException()
    body = await _read_body(scope, receive)
    try:
        data = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise BadRequest(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"The body could not be decoded: {exc}", code="request.malformed") from None
    scanned_at = _scanned_at(data.scanned_at)
    if data.stop is not None and not valid_stop(data.stop):
        raise BadRequest(
            "stop is an ASCII id of 1-64 letters, digits, '_', '.', ':' or '-'", code="scan.stop_invalid"
        )
    terminals: Terminals = scope["litestar_app"].state.terminals
    user: Any = scope["user"]  # the Principal access control admitted
    terminal = await terminals.registry.info(user.subject)
    outcome = await terminals.scans.scan(terminal, data.payload, scanned_at, data.stop, data.tap)
    answer = _encoder.encode(
        schemas.ScanResponse(
            result=outcome.result,  # type: ignore[arg-type]
            reason=outcome.reason,
            color=outcome.colour,  # type: ignore[arg-type]
            scan_id=outcome.scan_id,
            name=outcome.name,
            credential_type=outcome.credential_type,
            repeat=outcome.repeat,
            expires_at=datetime.fromtimestamp(outcome.expires_at, UTC) if outcome.expires_at else None,
            miniapp=_miniapp(outcome.miniapp),
            clock_offset_ms=outcome.clock_offset_ms,
        )
    )
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 200,
        "headers": [*_JSON_HEADERS, (b"content-length", str(len(answer)).encode())],
    }
    await send(start)
    await send({"type": "http.response.body", "body": answer, "more_body": False})


class ScanController(Controller):
    path = "/v1"
    tags = ["scans"]

    @post(
        "/scans/batch",
        status_code=200,
        opt=allow(TERMINAL)
        | raises(
            BadRequest,
            errors.BatchTooLarge,
            PayloadTooLarge,
            errors.TerminalNotFound,
            (Unavailable, "service.db_unavailable"),
        ),
        operation_id="scanBatch",
        media_type="application/json",
    )
    async def batch(
        self, request: Request[Any, Any, Any], principal: Caller, terminals: TerminalsDep
    ) -> Response[bytes]:
        """Upload offline scan records (yima_sdk.terminal.ScanBatch). Each is re-verified here; a record id seen
        before answers its original verdict, so resending a batch is safe."""
        try:
            batch = _batch_decoder.decode(await request.body())
        except msgspec.DecodeError as exc:
            raise BadRequest(f"Not a scan batch: {exc}", code="request.invalid") from None
        terminal = await terminals.registry.info(principal.subject)
        result: ScanBatchResult = await terminals.scans.upload_batch(terminal, batch)
        return Response(_batch_encoder.encode(result), media_type="application/json")

    @get("/me/scans", opt=allow(ANY_ACCOUNT), operation_id="listMyScans")
    async def my_scans(
        self,
        principal: Caller,
        terminals: TerminalsDep,
        db: Db,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> list[schemas.MyScan]:
        """Where the caller's codes were scanned, newest first."""
        rows = await terminals.scans.my_scans(db, principal.account_id, limit)
        return [
            schemas.MyScan(
                id=str(r["id"]),
                at=r["received_at"],
                result=r["result"],
                terminal_name=r["name"],
                kind=r["kind"],
                scene=r["scene"],
                reason=r["reason"],
                color=r["colour"],
            )
            for r in rows
        ]
