"""SQL for the development payment simulator's orders, shared by `yima dev` and the `yima` commands."""

from __future__ import annotations

import asyncpg

from server.onecard.payments.simulator import SimOrder

_COLUMNS = (
    "order_no, amount_fen, description, notify_url, prepay_id, created_at, state, provider_txn_id, paid_at"
)


async def save_order(conn: asyncpg.Connection, order: SimOrder) -> None:
    await conn.execute(
        f"""INSERT INTO payment_simulator_orders ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            ON CONFLICT (order_no) DO UPDATE
            SET state = EXCLUDED.state, provider_txn_id = EXCLUDED.provider_txn_id, paid_at = EXCLUDED.paid_at""",  # noqa: S608
        order.order_no,
        order.amount_fen,
        order.description,
        order.notify_url,
        order.prepay_id,
        order.created_at,
        order.state,
        order.provider_txn_id,
        order.paid_at,
    )


async def load_orders(conn: asyncpg.Connection) -> list[SimOrder]:
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM payment_simulator_orders ORDER BY created_at")  # noqa: S608
    return [SimOrder(**dict(row)) for row in rows]
