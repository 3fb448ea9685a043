"""Settling offline ride charges uploaded by terminals: exactly once per (terminal, record), within the device
certificate's offline limits, never below the offline floor.

The caller (the batch upload endpoint) has already re-verified each record's signatures; this module applies the
money rules. A whole batch costs a fixed handful of statements, whatever its size:

1. lock the batch's device certificates (id order: concurrent settlers queue instead of deadlocking);
2. check each record against its certificate (known, same account, not revoked, scanned inside its validity);
3. claim every record with INSERT ... ON CONFLICT DO NOTHING: a record another upload already claimed is a
   duplicate (if that upload is still in flight we wait for it, so two workers never both settle one record);
4. lock the wallets, then walk the claimed records in scan order applying the certificate's remaining uses and
   amount and the wallet's offline floor;
5. write one journal with two postings per settled ride, move the wallet balances and the certificates' counters.

A rejection is stored with its reason, so uploading the same record again answers the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import asyncpg

from server.onecard import repository

SettlementStatus = Literal["settled", "duplicate", "rejected"]

# Reason codes. The credential.* ones are the SDK verifier's own codes (yima_sdk.codes.REASON_CODES).
REVOKED = "credential.revoked"
CERTIFICATE_EXPIRED = "credential.device_certificate_expired"
NOT_YET_VALID = "credential.not_yet_valid"
OFFLINE_LIMIT = "credential.offline_limit_exceeded"
UNKNOWN_CERTIFICATE = "onecard.unknown_certificate"
ACCOUNT_MISMATCH = "onecard.account_mismatch"
AMOUNT_INVALID = "onecard.amount_invalid"
OFFLINE_FLOOR = "onecard.offline_floor_reached"


@dataclass(frozen=True, slots=True)
class SettlementResult:
    status: SettlementStatus
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class OfflineCharge:
    """One offline record to settle, as the batch endpoint hands it over after re-verification."""

    account_ref: bytes
    device_certificate_serial: bytes
    amount_fen: int
    record_id: str
    terminal_id: str
    scanned_at: dt.datetime


@dataclass(frozen=True, slots=True)
class SettlementSummary:
    settled: int
    duplicates: int
    rejected: int
    amount_fen: int


async def settle(
    conn: asyncpg.Connection,
    charges: Sequence[OfflineCharge],
    *,
    fares_account_id: int,
    offline_floor_fen: int,
    clock_skew_s: int,
    now: dt.datetime,
) -> tuple[list[SettlementResult], SettlementSummary]:
    """Settle a batch inside the caller's transaction; one result per charge, in the same order."""
    results: list[SettlementResult | None] = [None] * len(charges)
    skew = dt.timedelta(seconds=clock_skew_s)

    # The same record twice in one upload: the first occurrence decides, the others are duplicates.
    first: dict[tuple[str, str], int] = {}
    for i, c in enumerate(charges):
        key = (c.terminal_id, c.record_id)
        if key in first:
            results[i] = SettlementResult("duplicate")
        else:
            first[key] = i

    serials = {charges[i].device_certificate_serial for i in first.values()}
    certificates = {
        bytes(r["serial"]): r for r in await repository.certificates_for_update(conn, list(serials))
    }

    claims: list[tuple[str, str, bytes, int, int, dt.datetime, str, str | None]] = []
    candidates: list[int] = []  # records that passed the static checks, to be judged on limits and balance
    static_rejections: dict[tuple[str, str], str] = {}
    for key, i in first.items():
        c = charges[i]
        cert = certificates.get(c.device_certificate_serial)
        reason: str | None = None
        if cert is None:
            results[i] = SettlementResult(
                "rejected", UNKNOWN_CERTIFICATE
            )  # nothing to attach it to: not stored
            continue
        if bytes(cert["account_ref"]) != c.account_ref:
            reason = ACCOUNT_MISMATCH
        elif c.amount_fen <= 0:
            reason = AMOUNT_INVALID
        elif cert["revoked_at"] is not None:
            # A lost phone: once revoked, nothing more is charged to the resident. The loss is the operator's,
            # bounded by the certificate's offline limits.
            reason = REVOKED
        elif c.scanned_at > cert["expires_at"] + skew:
            reason = CERTIFICATE_EXPIRED
        elif c.scanned_at < cert["issued_at"] - skew:
            reason = NOT_YET_VALID
        claims.append(
            (
                key[0],
                key[1],
                c.device_certificate_serial,
                cert["onecard_account_id"],
                c.amount_fen,
                c.scanned_at,
                "rejected" if reason else "settled",
                reason,
            )
        )
        if reason is None:
            candidates.append(i)
        else:
            static_rejections[key] = reason

    claimed = await repository.claim_rides(conn, claims, now)
    already = [k for k in first if k not in claimed and results[first[k]] is None]
    if already:
        stored = await repository.stored_rides(conn, already)
        for key in already:
            row = stored.get(key)
            # A settled record uploaded again is a duplicate; a rejected one keeps its stored answer.
            if row is not None and row["status"] == "rejected":
                results[first[key]] = SettlementResult("rejected", row["reason"])
            else:
                results[first[key]] = SettlementResult("duplicate")
    for key, reason in static_rejections.items():
        if key in claimed:
            results[first[key]] = SettlementResult("rejected", reason)

    mine = [i for i in candidates if (charges[i].terminal_id, charges[i].record_id) in claimed]
    mine.sort(key=lambda i: charges[i].scanned_at)
    wallet_ids = sorted({certificates[charges[i].device_certificate_serial]["wallet_id"] for i in mine})
    wallets = await repository.wallets_for_update(conn, wallet_ids) if wallet_ids else {}
    balance = {w: int(r["balance_fen"]) for w, r in wallets.items()}
    floor = {w: max(offline_floor_fen, int(r["min_balance_fen"])) for w, r in wallets.items()}
    uses: dict[int, int] = {}
    spent: dict[int, int] = {}

    settled: list[tuple[str, str, int, int]] = []
    rejected_keys: list[tuple[str, str]] = []
    rejected_reasons: list[str] = []
    deltas: dict[int, int] = {}
    usage: dict[int, tuple[int, int]] = {}
    for i in mine:
        c = charges[i]
        cert = certificates[c.device_certificate_serial]
        cert_id, wallet = cert["id"], cert["wallet_id"]
        used = cert["offline_uses"] + uses.get(cert_id, 0)
        amount = cert["offline_amount_fen"] + spent.get(cert_id, 0)
        if used + 1 > cert["max_offline_uses"] or amount + c.amount_fen > cert["max_offline_amount_fen"]:
            reason = OFFLINE_LIMIT
        elif balance[wallet] - c.amount_fen < floor[wallet]:
            reason = OFFLINE_FLOOR
        else:
            uses[cert_id] = uses.get(cert_id, 0) + 1
            spent[cert_id] = spent.get(cert_id, 0) + c.amount_fen
            balance[wallet] -= c.amount_fen
            deltas[wallet] = deltas.get(wallet, 0) - c.amount_fen
            settled.append((c.terminal_id, c.record_id, wallet, c.amount_fen))
            results[i] = SettlementResult("settled")
            continue
        rejected_keys.append((c.terminal_id, c.record_id))
        rejected_reasons.append(reason)
        results[i] = SettlementResult("rejected", reason)
    for cert_id, n in uses.items():
        usage[cert_id] = (n, spent[cert_id])

    await repository.reject_rides(conn, rejected_keys, rejected_reasons)
    await repository.post_rides(conn, settled, fares_account_id, now)
    await repository.add_to_wallets(conn, deltas)
    await repository.add_certificate_use(conn, usage)

    final = [r if r is not None else SettlementResult("rejected", UNKNOWN_CERTIFICATE) for r in results]
    summary = SettlementSummary(
        settled=len(settled),
        duplicates=sum(1 for r in final if r.status == "duplicate"),
        rejected=sum(1 for r in final if r.status == "rejected"),
        amount_fen=sum(s[3] for s in settled),
    )
    return final, summary
