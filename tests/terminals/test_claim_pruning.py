"""Durable replay claims are pruned once no scan of their code can pass any more (issue 17): old claims go in
bounded batches, on one node at a time, and a code whose claim went is still refused, as expired."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from server.terminals import repository
from server.terminals.scans.claims import claim_retention_s, prune_claims
from server.terminals.scans.offline import MAX_OFFLINE_AGE_S
from tests.conftest import login_with_role
from tests.credentials.helpers import (
    ankang_payload,
    register_terminal,
    scan,
    terminal_token,
    verified_resident,
)
from tests.terminals.test_batch import _record, _upload


async def _claims(client, keys: list[bytes]) -> set[bytes]:
    async with client.app.state.core.db.connection() as conn:
        rows = await conn.fetch("SELECT key FROM scan_replay_claims WHERE key = ANY($1::bytea[])", keys)
    return {bytes(r["key"]) for r in rows}


async def _claim_key_of(client, scan_id: str) -> bytes:
    async with client.app.state.core.db.connection() as conn:
        return bytes(await conn.fetchval("SELECT key FROM scan_replay_claims WHERE scan_id = $1", scan_id))


def test_claims_outlive_every_way_a_code_can_still_pass(settings):
    retention = claim_retention_s(settings)
    assert retention > MAX_OFFLINE_AGE_S + 0xFFFF  # an offline record a week old, of a partner's longest code
    assert retention == MAX_OFFLINE_AGE_S + 0xFFFF + 2 * settings.clock_skew_s


async def test_old_claims_are_pruned_fresh_ones_kept_and_a_pruned_code_is_refused_as_expired(
    client, settings
):
    operator = await login_with_role(client, "operator")
    tills = []
    for _ in range(2):
        till_id, till_key = await register_terminal(client, operator, kind="pharmacy")
        tills.append(await terminal_token(client, till_id, till_key))
    old_codes, old_keys = [], []
    for _ in range(2):
        resident, _ = await verified_resident(client)
        payload = await ankang_payload(client, resident)
        answer = await scan(client, tills[0], payload)
        assert answer["result"] == "accept"
        old_codes.append(payload)
        old_keys.append(await _claim_key_of(client, answer["scan_id"]))

    retention = claim_retention_s(settings)
    later = time.time() + retention + 60
    fresh_key = b"fresh-" + uuid.uuid4().bytes
    async with client.app.state.core.db.connection() as conn:
        await repository.claim_replays(
            conn, [(fresh_key, uuid.uuid4())], datetime.fromtimestamp(later - 60, UTC)
        )

    pruned = await prune_claims(client.app.state.core.db, now=later, retention_s=retention, batch=1)
    assert pruned is not None and pruned >= 2  # one at a time, until none is left
    assert await _claims(client, [*old_keys, fresh_key]) == {fresh_key}

    scans = client.app.state.terminals.scans
    clock = scans.clock
    scans.clock = lambda: later
    try:
        for payload in old_codes:  # its claim is gone, and so is every way it could pass
            assert (await scan(client, tills[1], payload))["reason"] == "credential.expired"
            sent_then = _record(payload, at=later - retention)
            assert await _upload(client, tills[1], [sent_then]) == [("rejected", "scan.too_old")]
    finally:
        scans.clock = clock
    assert await _claims(client, old_keys) == set()


async def test_only_one_node_prunes_at_a_time(client, settings):
    """Another node holds the pruning lock: this one skips the round and deletes nothing."""
    later = time.time() + claim_retention_s(settings) + 60
    old_key = b"old-" + uuid.uuid4().bytes
    db = client.app.state.core.db
    async with db.connection() as conn:
        await repository.claim_replays(
            conn, [(old_key, uuid.uuid4())], datetime.fromtimestamp(time.time(), UTC)
        )
    async with db.connection() as other_node:
        assert await repository.try_lock_claim_pruning(other_node)
        try:
            assert await prune_claims(db, now=later, retention_s=claim_retention_s(settings)) is None
            assert await _claims(client, [old_key]) == {old_key}
        finally:
            await repository.unlock_claim_pruning(other_node)
    pruned = await prune_claims(db, now=later, retention_s=claim_retention_s(settings))
    assert pruned is not None and pruned >= 1
    assert await _claims(client, [old_key]) == set()


async def test_a_pruner_that_cannot_unlock_leaves_no_lock_in_the_pool(client, settings, monkeypatch):
    """The pool resets no session state: when the unlock fails (a cancel, a dropped statement), the pruner's
    connection is closed, so no pooled connection keeps the lock and the next round on any node prunes."""
    db = client.app.state.core.db
    later = time.time() + claim_retention_s(settings) + 60

    async def failing_unlock(conn) -> None:
        raise ConnectionResetError("unlock lost")

    monkeypatch.setattr(repository, "unlock_claim_pruning", failing_unlock)
    with pytest.raises(ConnectionResetError):
        await prune_claims(db, now=later, retention_s=claim_retention_s(settings))
    monkeypatch.undo()
    admin = await asyncpg.connect(settings.database_url)
    try:
        assert await repository.try_lock_claim_pruning(admin), "a pooled connection still holds the lock"
        await repository.unlock_claim_pruning(admin)
    finally:
        await admin.close()
