"""The payment simulator over HTTP: the protocol a real provider speaks (`HttpPaymentProvider` talks to it), plus
`/sim/...` control routes that play the payer and the provider's operations team (`simulator.py` holds its state
and rules). Run it alone: `python -m server.onecard.payments.simulator_app --port 8100`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from server.onecard.payments import signing
from server.onecard.payments.simulator import FakeClock, PaymentSimulator, SimError
from server.wire import b64url

# -- HTTP ------------------------------------------------------------------------------------------------------


class _CreateOrder(msgspec.Struct, forbid_unknown_fields=True):
    merchant_id: str
    order_no: str
    amount_fen: int
    description: str
    notify_url: str


class _PayControl(msgspec.Struct, forbid_unknown_fields=True):
    paying_first: bool = False
    notify: bool = True


class _DeliverControl(msgspec.Struct, forbid_unknown_fields=True):
    notify_ids: list[str] | None = None


class _ClockControl(msgspec.Struct, forbid_unknown_fields=True):
    advance_s: float


class _FaultsControl(msgspec.Struct, forbid_unknown_fields=True):
    fail_creates: int | None = None
    fail_queries: int | None = None
    bill_amount_delta: dict[str, int] | None = None


def _error(exc: SimError) -> Response[Any]:
    return Response({"code": exc.code, "message": exc.message}, status_code=exc.status)


def create_simulator_app(sim: PaymentSimulator, *, auto_deliver: bool = False) -> Litestar:
    """The simulator over HTTP. With `auto_deliver`, a background task delivers due notifications every second."""

    async def authenticate(request: Request[Any, Any, Any], body: bytes) -> None:
        parts = signing.parse_request_auth(request.headers.get(signing.REQUEST_AUTH, ""))
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if parts.get("merchant_id") != sim.merchant_id or not signing.check_request(
            sim.merchant_key, parts, request.method, path, body
        ):
            raise SimError(401, "SIGN_ERROR", "request signature is not valid")
        try:
            sent = int(parts.get("timestamp", "0"))
        except ValueError:
            sent = 0
        if abs(sent - sim.clock().timestamp()) > 300:
            raise SimError(401, "SIGN_ERROR", "request timestamp outside 5 minutes")

    @post("/v3/pay/orders", status_code=200)
    async def create(request: Request[Any, Any, Any]) -> Response[Any]:
        body = await request.body()
        try:
            await authenticate(request, body)
            data = msgspec.json.decode(body, type=_CreateOrder)
            order = sim.create_order(
                data.merchant_id, data.order_no, data.amount_fen, data.description, data.notify_url
            )
        except SimError as exc:
            return _error(exc)
        except msgspec.ValidationError as exc:
            return _error(SimError(400, "PARAM_ERROR", str(exc)))
        return Response(msgspec.to_builtins(order))

    @get("/v3/pay/orders/{order_no:str}")
    async def query(request: Request[Any, Any, Any], order_no: FromPath[str]) -> Response[Any]:
        try:
            await authenticate(request, b"")
            status = sim.query(order_no)
        except SimError as exc:
            return _error(exc)
        if status is None:
            return _error(SimError(404, "ORDER_NOT_EXIST", "no such order"))
        return Response(msgspec.to_builtins(status))

    @get("/v3/bills")
    async def bill(request: Request[Any, Any, Any], date: FromQuery[str]) -> Response[Any]:
        try:
            await authenticate(request, b"")
            lines = sim.bill(dt.date.fromisoformat(date))
        except SimError as exc:
            return _error(exc)
        except ValueError:
            return _error(SimError(400, "PARAM_ERROR", "date is YYYY-MM-DD"))
        return Response(msgspec.to_builtins(lines))

    @get("/sim/cashier/{prepay_id:str}")
    async def cashier(prepay_id: FromPath[str]) -> Response[Any]:
        for order in sim.orders.values():
            if order.prepay_id == prepay_id:
                return Response(
                    {"order_no": order.order_no, "amount_fen": order.amount_fen, "state": order.state}
                )
        return _error(SimError(404, "ORDER_NOT_EXIST", "no such prepay id"))

    @post("/sim/orders/{order_no:str}/pay", status_code=200)
    async def pay(order_no: FromPath[str], data: JSONBody[_PayControl]) -> Response[Any]:
        try:
            return Response(
                {"notify_ids": sim.pay(order_no, paying_first=data.paying_first, notify=data.notify)}
            )
        except SimError as exc:
            return _error(exc)

    @post("/sim/orders/{order_no:str}/close", status_code=200)
    async def close(order_no: FromPath[str]) -> Response[Any]:
        try:
            return Response({"notify_ids": sim.close(order_no)})
        except SimError as exc:
            return _error(exc)

    @post("/sim/deliver", status_code=200)
    async def deliver(data: JSONBody[_DeliverControl]) -> list[dict[str, Any]]:
        attempts = await (sim.deliver_due() if data.notify_ids is None else sim.redeliver(data.notify_ids))
        return [{"notify_id": a.notify_id, "status": a.status, "delivered": a.delivered} for a in attempts]

    @post("/sim/clock", status_code=200)
    async def clock(data: JSONBody[_ClockControl]) -> dict[str, str]:
        if not isinstance(sim.clock, FakeClock):
            return {"error": "the simulator runs on the real clock"}
        return {"now": sim.clock.advance(data.advance_s).isoformat()}

    @post("/sim/faults", status_code=200)
    async def faults(data: JSONBody[_FaultsControl]) -> dict[str, Any]:
        if data.fail_creates is not None:
            sim.faults.fail_creates = data.fail_creates
        if data.fail_queries is not None:
            sim.faults.fail_queries = data.fail_queries
        if data.bill_amount_delta is not None:
            sim.faults.bill_amount_delta.update(data.bill_amount_delta)
        return msgspec.structs.asdict(_FaultsControl(sim.faults.fail_creates, sim.faults.fail_queries))

    @get("/sim/deliveries")
    async def deliveries() -> list[dict[str, Any]]:
        return [
            {
                "notify_id": d.notify_id,
                "order_no": d.order_no,
                "attempts": d.attempts,
                "delivered": d.delivered,
                "gave_up": d.gave_up,
                "last_status": d.last_status,
                "due_at": d.due_at.isoformat(),
                "state": msgspec.json.decode(d.body)["state"],
            }
            for d in sim.deliveries
        ]

    @get("/sim/public-key")
    async def public_key() -> dict[str, str]:
        return {"public_key": b64url(sim.public_key)}

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        task = asyncio.create_task(sim.run_delivery_loop()) if auto_deliver else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    return Litestar(
        route_handlers=[
            create,
            query,
            bill,
            cashier,
            pay,
            close,
            deliver,
            clock,
            faults,
            deliveries,
            public_key,
        ],
        lifespan=[lifespan],
        openapi_config=None,
    )


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - manual tool
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description="yima payment provider simulator")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--merchant-id", default="yima-guangde")
    parser.add_argument("--merchant-key", default="dev-merchant-key-not-secret")
    args = parser.parse_args(argv)
    sim = PaymentSimulator(
        merchant_id=args.merchant_id, merchant_key=args.merchant_key, base_url=f"http://127.0.0.1:{args.port}"
    )
    print(
        f"provider public key (YIMA onecard provider_public_key): {b64url(sim.public_key)}",
        flush=True,
    )
    uvicorn.run(create_simulator_app(sim, auto_deliver=True), host="127.0.0.1", port=args.port)


if __name__ == "__main__":  # pragma: no cover
    main()
