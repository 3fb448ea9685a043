"""Signed checkpoints of the audit chain's head, published on a schedule and on demand, exported outside the database.

A checkpoint has the shape of Certificate Transparency's signed tree head: the chain's size (its head's sequence
number), the head record's MAC, a timestamp, signed by the trust root key that terminals and partner counties
already pin. A chain is a simpler structure than CT's Merkle tree, and its consistency proof is the chain itself:
`yima audit verify` checks that the record at each checkpoint's size still has the signed MAC (else "rewritten")
and that the log still reaches the newest checkpoint (else "truncated"). Checkpoints live in the database, in a
file on each node that publishes one, and behind GET /v1/audit/checkpoints, which partners and the health
authority fetch and keep: a copy the operator of the database cannot take back.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from server.audit import repository
from server.db import Database
from server.wire import Outbound, b64url

if TYPE_CHECKING:
    # Only for annotations: server.keys.service imports the audit package (a module importing server.seed
    # first would otherwise meet a half-initialised server.keys.service).
    from server.keys.service import SigningKey

log = logging.getLogger("yima.audit.checkpoints")

_DOMAIN = b"yima-audit-checkpoint/v1\n"
"""Signed before the fields, so a checkpoint signature can never be taken for a trust list's (same root key)."""


class Checkpoint(Outbound, kw_only=True):
    """A signed head of the audit chain."""

    size: int
    """Records covered: the sequence number of the head record."""
    head: str
    """The head record's MAC, hex."""
    timestamp: int
    """When it was signed, milliseconds since the Unix epoch."""
    key_id: str
    """The trust root key that signed (the trust list's root key id)."""
    signature: str
    """Ed25519 over "yima-audit-checkpoint/v1\\n<size>\\n<head>\\n<timestamp>", unpadded base64url."""

    @property
    def signed(self) -> str:
        return datetime.fromtimestamp(self.timestamp / 1000, UTC).isoformat(timespec="seconds")

    def signed_bytes(self) -> bytes:
        return _DOMAIN + f"{self.size}\n{self.head}\n{self.timestamp}".encode()

    def verify(self, root_keys: Mapping[str, Ed25519PublicKey]) -> bool:
        key = root_keys.get(self.key_id)
        if key is None:
            return False
        try:
            key.verify(
                base64.urlsafe_b64decode(self.signature + "=" * (-len(self.signature) % 4)),
                self.signed_bytes(),
            )
        except (InvalidSignature, ValueError):
            return False
        return True


_encode = msgspec.json.Encoder().encode
_decode_line = msgspec.json.Decoder(Checkpoint).decode


def sign(size: int, head: bytes, at: datetime, key_id: str, private_key: Ed25519PrivateKey) -> Checkpoint:
    unsigned = Checkpoint(
        size=size, head=head.hex(), timestamp=round(at.timestamp() * 1000), key_id=key_id, signature=""
    )
    return msgspec.structs.replace(unsigned, signature=b64url(private_key.sign(unsigned.signed_bytes())))


def from_row(row: asyncpg.Record) -> Checkpoint:
    return Checkpoint(
        size=row["size"],
        head=bytes(row["head"]).hex(),
        timestamp=round(row["signed_at"].timestamp() * 1000),
        key_id=row["key_id"],
        signature=b64url(bytes(row["signature"])),
    )


async def checkpoint_head(
    conn: asyncpg.Connection, *, key_id: str, private_key: Ed25519PrivateKey
) -> Checkpoint | None:
    """Within the caller's transaction: sign the current head unless it is signed already (None then)."""
    head = await repository.lock_and_last(conn)  # the append lock: the head cannot move while we sign it
    if head is None or await repository.last_checkpoint_size(conn) >= head["seq"]:
        return None
    now = datetime.now(UTC)
    at = now.replace(microsecond=now.microsecond // 1000 * 1000)  # the timestamp is signed in milliseconds
    checkpoint = sign(head["seq"], bytes(head["hash"]), at, key_id, private_key)
    await repository.insert_checkpoint(
        conn,
        size=checkpoint.size,
        head=bytes(head["hash"]),
        signed_at=at,
        key_id=key_id,
        signature=base64.urlsafe_b64decode(checkpoint.signature + "=" * (-len(checkpoint.signature) % 4)),
    )
    return checkpoint


def export(path: Path, checkpoint: Checkpoint) -> None:
    """Append to the node's checkpoint file (one JSON line each; O_APPEND, so workers' lines never interleave)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as f:
        f.write(_encode(checkpoint) + b"\n")


def read_file(path: Path) -> list[Checkpoint]:
    return [_decode_line(line) for line in path.read_bytes().splitlines() if line.strip()]


async def publish(db: Database, signer: SigningKey, export_to: Path) -> Checkpoint | None:
    """Sign the head if it moved since the last checkpoint, store it, and append it to the node's file."""
    async with db.transaction() as conn:
        checkpoint = await checkpoint_head(conn, key_id=signer.kid, private_key=signer.private_key)
    if checkpoint is not None:
        export(export_to, checkpoint)
        log.info("audit checkpoint published", extra={"size": checkpoint.size, "file": str(export_to)})
    return checkpoint


async def published(db: Database, after: int, limit: int) -> list[Checkpoint]:
    async with db.connection() as conn:
        return [from_row(r) for r in await repository.checkpoints_after(conn, after, limit)]
