"""Health status: the authority sets a resident's colour one by one or from a file; residents read theirs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from server import audit
from server.core import Core
from server.credentials import errors, repository
from server.credentials.ankang import DEFAULT_COLOUR, AnkangService
from server.credentials.ports import Residents
from server.credentials.trust_list import CHANNEL
from server.identity.id_number import IdNumberError, parse_id_number

COLOURS = ("green", "yellow", "red")
MAX_IMPORT_ROWS = 50_000


@dataclass(frozen=True)
class ImportOutcome:
    import_id: str
    applied: int
    errors: list[tuple[int, str]]
    repeated: bool


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("effective time needs a UTC offset")
    return value


class HealthService:
    def __init__(self, core: Core, ankang: AnkangService, residents: Residents) -> None:
        self._core = core
        self._ankang = ankang
        self._residents = residents

    def _index(self, id_number: str) -> bytes:
        try:
            parsed = parse_id_number(id_number.strip().upper())
        except IdNumberError as exc:
            raise errors.IdNumberInvalid(f"The ID number is not valid: {exc}") from None
        return self._core.cipher.blind_index("id_number", parsed.value)

    async def _changed(self, account_id: int | None) -> None:
        self._ankang.forget(account_id)
        await self._core.cache.publish(
            CHANNEL, b"status:" + (b"*" if account_id is None else str(account_id).encode())
        )

    async def _apply(
        self,
        conn: asyncpg.Connection,
        *,
        actor: str,
        index: bytes,
        colour: str,
        reason: str,
        effective_at: datetime,
        import_digest: bytes | None = None,
    ) -> int | None:
        await repository.insert_status(
            conn,
            id_index=index,
            colour=colour,
            reason=reason,
            effective_at=effective_at,
            set_at=datetime.now(UTC),
            set_by=actor,
            import_digest=import_digest,
        )
        account_id = await self._residents.account_with_id_index(conn, index)
        # The blind index names the resident in the audit log without their ID number.
        target = f"account:{account_id}" if account_id is not None else f"id_index:{index.hex()[:16]}"
        details: dict[str, Any] = {"colour": colour, "effective_at": effective_at.isoformat()}
        if import_digest is not None:
            details["import"] = import_digest.hex()[:16]
        await audit.append(conn, actor=actor, action="health.status_set", target=target, details=details)
        return account_id

    async def set_status(
        self, *, actor: str, id_number: str, colour: str, reason: str, effective_at: datetime | None
    ) -> tuple[datetime, bool]:
        index = self._index(id_number)
        when = effective_at or datetime.now(UTC)
        async with self._core.db.transaction() as conn:
            account_id = await self._apply(
                conn, actor=actor, index=index, colour=colour, reason=reason, effective_at=when
            )
        await self._changed(account_id)
        return when, account_id is not None

    async def import_file(self, *, actor: str, content: bytes) -> ImportOutcome:
        """Apply every good row, report every bad one with its line; the same file twice applies nothing twice."""
        digest = hashlib.sha256(content).digest()
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise errors.ImportInvalid("The file must be UTF-8 text") from None
        lines = text.splitlines()
        if len(lines) > MAX_IMPORT_ROWS:
            raise errors.ImportInvalid(f"At most {MAX_IMPORT_ROWS} rows per file")
        now = datetime.now(UTC)
        async with self._core.db.transaction() as conn:
            if not await repository.claim_import(conn, digest, now, actor):
                stored = await repository.import_result(conn, digest)
                return ImportOutcome(
                    digest.hex()[:16],
                    stored["applied"],
                    [(e[0], e[1]) for e in stored["errors"]],
                    repeated=True,
                )
            applied, bad = 0, []
            for number, line in enumerate(lines, start=1):
                row = [cell.strip() for cell in line.split(",")]
                if not line.strip() or (number == 1 and row[0].lower() in ("id_number", "id")):
                    continue
                problem = await self._import_row(conn, actor, row, now, digest)
                if problem is None:
                    applied += 1
                else:
                    bad.append((number, problem))
            await repository.store_import_result(
                conn, digest, {"applied": applied, "errors": [[n, p] for n, p in bad]}
            )
            await audit.append(
                conn,
                actor=actor,
                action="health.import",
                target=f"import:{digest.hex()[:16]}",
                details={"applied": applied, "rejected": len(bad)},
            )
        if applied:
            await self._changed(None)
        return ImportOutcome(digest.hex()[:16], applied, bad, repeated=False)

    async def _import_row(
        self, conn: asyncpg.Connection, actor: str, row: list[str], now: datetime, digest: bytes
    ) -> str | None:
        if not 2 <= len(row) <= 4:
            return "expected: id_number,color[,reason[,effective_at]]"
        try:
            index = self._index(row[0])
        except errors.IdNumberInvalid as exc:
            return exc.detail
        colour = row[1].lower()
        if colour not in COLOURS:
            return f"unknown color {row[1]!r}; one of green, yellow, red"
        reason = row[2] if len(row) > 2 and row[2] else "bulk import"
        if len(reason) > 200:
            return "reason longer than 200 characters"
        try:
            effective_at = _parse_time(row[3]) if len(row) > 3 and row[3] else now
        except ValueError:
            return "effective_at is not an ISO 8601 time with a UTC offset"
        await self._apply(
            conn,
            actor=actor,
            index=index,
            colour=colour,
            reason=reason,
            effective_at=effective_at,
            import_digest=digest,
        )
        return None

    async def my_status(
        self, conn: asyncpg.Connection, account_id: int
    ) -> tuple[str, datetime | None, list[asyncpg.Record]]:
        index = await self._residents.verified_id_index(conn, account_id)
        if index is None:
            raise errors.RealNameRequired("Verify your real name to see your health status")
        history = await repository.status_history(conn, index)
        now = datetime.now(UTC)
        current = next((r for r in history if r["effective_at"] <= now), None)
        if current is None:
            return DEFAULT_COLOUR, None, history
        return current["colour"], current["effective_at"], history
