"""Re-pricing offline rides at settlement: a ride code a bus terminal priced offline is charged the fare of the
table in force when the ride happened, as the scene's app published it (`ctx.terminals.publish("fares", ...)`),
not whatever the terminal asked (it may hold an older table, or a broken one).

The line is the terminal's staff unit `line:<id>` (a bus terminal is registered serving one line); the fare is
`yima_sdk.fares.settlement_fare`, the one a terminal prices with (`Terminal.fare`): the rider unknown, a staged line
at its top stage. A terminal without a line, or a scene whose app publishes no fares, is charged as it asked.
The price differs from the terminal's: the charge carries both (one-card keeps the terminal's beside it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from yima_sdk.fares import FareError, settlement_fare

from server.terminals.ports import SceneDocuments
from server.terminals.registry import TerminalInfo

UNPRICED = "fare.unpriced"
"""The reason an offline ride is not charged: its app's published tables have no fare for it (no version in force
at the ride, or the line is not in it). Nothing is taken from the rider; the record says why."""


@dataclass(frozen=True, slots=True)
class Fare:
    """What to charge for one ride: `amount_fen` (None: not priced, reason UNPRICED) and what the terminal asked."""

    amount_fen: int | None
    terminal_fen: int


async def reprice(
    conn: asyncpg.Connection,
    documents: SceneDocuments,
    terminal: TerminalInfo,
    rides: Sequence[tuple[datetime, int]],
) -> list[Fare] | None:
    """The fare of each (ride time, terminal's amount) by the table in force at the ride; None when the terminal
    serves no line or its scene's app publishes no fares (the terminal's amounts stand)."""
    unit = terminal.unit or ""
    if not unit.startswith("line:") or not rides:
        return None
    schedule = await documents.fare_schedule(conn, terminal.kind, terminal.scene)
    if schedule is None:
        return None
    line = unit.removeprefix("line:")
    fares = []
    for at, asked in rides:
        try:
            fares.append(Fare(settlement_fare(schedule, line, at), asked))
        except FareError:
            fares.append(Fare(None, asked))
    return fares
