"""Settling offline ride charges uploaded by terminals: exactly once per (terminal, record), within the device
certificate's offline limits, never below the offline floor.

The caller (the batch upload endpoint) has already re-verified each record's signatures; this module applies the
money rules. A whole batch costs a fixed handful of statements, whatever its size:

1. take the batch's terminals' ride locks (transaction advisory locks, in key order): two settlers of one record
   (the same upload on two workers) run one after the other, so the second sees the first's rides;
2. read which records are already stored: those answer as before (duplicate, or their stored rejection);
3. lock the remaining records' device certificates (id order: concurrent settlers queue instead of deadlocking);
4. check each new record against its certificate (known, same account, not revoked, scanned inside its validity);
5. lock the wallets, then walk the records in scan order applying the certificate's remaining uses and amount
   and the wallet's offline floor;
6. write every new ride with its final status and, when any settled, one journal for the upload: one posting
   per wallet (the sum of its rides) and one to the transit fares account, the rides linked to it; then move the
   wallet balances and the certificates' counters.

One journal per upload, not per ride: a ride is a row in onecard_offline_rides (amount, time, terminal, journal),
and a resident's statement lists the rides themselves. Per-ride journals cost three ledger rows and an update
per ride, two thirds of an upload's database time.

A rejection is stored with its reason, so uploading the same record again answers the same way.

A partner county's ride code (一卡通行: its device certificate signed by that county's issuer key on the trust list,
which the caller verified) has no certificate or one-card here. Its charge says so (`partner`, with what the
certificate states); in step 3 its certificate's lock is taken and what its settled rides used is read, step 4
checks its validity, step 5 its offline limits (no wallet, no floor), and step 6 stores it as a ride that county
owes (`partner_issuer`), outside the journal: the bus app's daily clearing report lists it per county.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import asyncpg

from server.onecard.offline import repository

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
    account_id: int | None = None
    """Whose one-card a settled ride was charged to (the ride code names a one-card, not a resident)."""


class ChargeToSettle(Protocol):
    """What settlement reads of an offline record to charge: terminals hand over their own records (re-verified),
    and any record with these fields fits (`OfflineCharge` is one-card's own)."""

    @property
    def account_ref(self) -> bytes: ...
    @property
    def device_certificate_serial(self) -> bytes: ...
    @property
    def amount_fen(self) -> int: ...
    @property
    def record_id(self) -> str: ...
    @property
    def terminal_id(self) -> str: ...
    @property
    def scanned_at(self) -> dt.datetime: ...
    @property
    def terminal_fen(self) -> int | None:
        """What the terminal asked, when settlement charges a re-priced `amount_fen` that differs from it."""
        ...

    @property
    def scan_id(self) -> str | None:
        """The platform's id of the scan, by which the app bound to its scene may refund part of the ride."""
        ...

    @property
    def app_id(self) -> str | None:
        """The app bound to the ride's scene: the only one that may refund part of it (`refund_ride`)."""
        ...

    @property
    def partner(self) -> PartnerCertificate | None:
        """A partner county's certificate (None for ours): that county owes the ride."""
        ...


class PartnerCertificate(Protocol):
    """What a partner county's verified device certificate states (we hold no row of it)."""

    @property
    def issuer(self) -> int: ...
    @property
    def issued_at(self) -> dt.datetime: ...
    @property
    def expires_at(self) -> dt.datetime: ...
    @property
    def max_offline_uses(self) -> int: ...
    @property
    def max_offline_amount_fen(self) -> int: ...


@dataclass(frozen=True, slots=True)
class OfflineCharge:
    """One offline record to settle (one-card's own `ChargeToSettle`)."""

    account_ref: bytes
    device_certificate_serial: bytes
    amount_fen: int
    record_id: str
    terminal_id: str
    scanned_at: dt.datetime
    terminal_fen: int | None = None
    scan_id: str | None = None
    app_id: str | None = None
    partner: PartnerCertificate | None = None


@dataclass(frozen=True, slots=True)
class SettlementSummary:
    settled: int
    duplicates: int
    rejected: int
    amount_fen: int
    """What settled rides took from our one-cards."""
    partner_rides: int = 0
    partner_fen: int = 0
    """Settled rides partner counties owe (counted in `settled`, not in `amount_fen`)."""


async def settle(
    conn: asyncpg.Connection,
    charges: Sequence[ChargeToSettle],
    *,
    fares_account_id: int,
    offline_floor_fen: int,
    clock_skew_s: int,
    now: dt.datetime,
) -> tuple[list[SettlementResult], SettlementSummary]:
    """Settle a batch inside the caller's transaction; one result per charge, in the same order. The steps are
    those of the module's docstring."""
    batch = _Batch(charges)
    await batch.answer_stored(conn)
    await batch.lock_certificates(conn)
    candidates = batch.check_certificates(dt.timedelta(seconds=clock_skew_s))
    await batch.apply_limits(conn, candidates, offline_floor_fen)
    await batch.write(conn, fares_account_id, now)
    return batch.final()


_RideRow = repository.RideRow


class _Batch:
    """One batch on its way through the steps: each charge's result once decided, the rides to write, and what
    the settled ones take from their certificates and wallets."""

    def __init__(self, charges: Sequence[ChargeToSettle]) -> None:
        self.charges = charges
        self.results: list[SettlementResult | None] = [None] * len(charges)
        self.first: dict[tuple[str, str], int] = {}
        """Each (terminal, record) still to decide, at its first occurrence in the batch."""
        self.certificates: dict[bytes, asyncpg.Record] = {}
        self.partner_use: dict[tuple[int, bytes], tuple[int, int]] = {}
        """Per partner certificate (issuer, serial): the rides and the amount settled before (then in this batch too)."""
        self.partner_rides = self.partner_fen = 0
        self.rows: list[_RideRow] = []
        self.uses: dict[int, int] = {}
        self.spent: dict[int, int] = {}
        """Per certificate id: the rides and the amount settled in this batch."""
        self.deltas: dict[int, int] = {}
        """Per wallet id: what this batch takes from it."""
        self.settled = self.settled_fen = 0
        for i, c in enumerate(charges):
            key = (c.terminal_id, c.record_id)
            if key in self.first:  # the same record twice in one upload: the first occurrence decides
                self.results[i] = SettlementResult("duplicate")
            else:
                self.first[key] = i

    def decide(self, i: int, cert: asyncpg.Record | None, reason: str | None) -> None:
        """Charge `i` settles (no reason) or is rejected; either way its ride is stored with the answer, and what
        the terminal asked when settlement charges another amount. `cert` is None for a partner county's ride."""
        status: SettlementStatus = "settled" if reason is None else "rejected"
        c = self.charges[i]
        self.rows.append(
            (
                c.terminal_id,
                c.record_id,
                c.device_certificate_serial,
                None if cert is None else cert["onecard_account_id"],
                c.amount_fen,
                c.scanned_at,
                status,
                reason,
                c.terminal_fen if c.terminal_fen != c.amount_fen else None,
                None if c.scan_id is None else uuid.UUID(c.scan_id),
                c.app_id,
                None if c.partner is None else c.partner.issuer,
            )
        )
        # A settled ride says whose card paid: the ride code names a one-card, the scene's app wants the rider.
        owner = cert["owner_account_id"] if reason is None and cert is not None else None
        self.results[i] = SettlementResult(status, reason, account_id=owner)

    async def answer_stored(self, conn: asyncpg.Connection) -> None:
        """Steps 1-2: the terminals' ride locks, then the records stored before answer as they did."""
        await repository.lock_terminal_rides(conn, sorted({terminal for terminal, _ in self.first}))
        for key, row in (await repository.stored_rides(conn, list(self.first))).items():
            # A settled record uploaded again is a duplicate; a rejected one keeps its stored answer.
            i = self.first.pop(key)
            self.results[i] = (
                SettlementResult("rejected", row["reason"])
                if row["status"] == "rejected"
                else SettlementResult("duplicate")
            )

    async def lock_certificates(self, conn: asyncpg.Connection) -> None:
        """Step 3: the new records' device certificates, locked."""
        mine = {c.device_certificate_serial for c in self._new() if c.partner is None}
        self.certificates = {
            bytes(r["serial"]): r for r in await repository.certificates_for_update(conn, list(mine))
        }
        partners = {
            (c.partner.issuer, c.device_certificate_serial) for c in self._new() if c.partner is not None
        }
        self.partner_use = await repository.partner_certificate_use(conn, list(partners))

    def _new(self) -> list[ChargeToSettle]:
        return [self.charges[i] for i in self.first.values()]

    def check_certificates(self, skew: dt.timedelta) -> list[int]:
        """Step 4: each new record against its certificate; returns those that passed, in scan order."""
        candidates: list[int] = []
        for i in self.first.values():
            c = self.charges[i]
            if c.partner is not None:
                reason = _partner_reason(c, c.partner, skew)
                if reason is None:
                    candidates.append(i)
                else:
                    self.decide(i, None, reason)
                continue
            cert = self.certificates.get(c.device_certificate_serial)
            if cert is None:  # nothing to attach it to: not stored
                self.results[i] = SettlementResult("rejected", UNKNOWN_CERTIFICATE)
                continue
            reason = _certificate_reason(c, cert, skew)
            if reason is None:
                candidates.append(i)
            else:
                self.decide(i, cert, reason)
        candidates.sort(key=lambda i: self.charges[i].scanned_at)
        return candidates

    async def apply_limits(
        self, conn: asyncpg.Connection, candidates: list[int], offline_floor_fen: int
    ) -> None:
        """Step 5: lock the wallets, then walk the records in scan order against the certificate's remaining uses
        and amount and the wallet's offline floor."""
        charges, certificates = self.charges, self.certificates
        wallet_ids = sorted(
            {
                certificates[charges[i].device_certificate_serial]["wallet_id"]
                for i in candidates
                if charges[i].partner is None
            }
        )
        wallets = await repository.wallets_for_update(conn, wallet_ids) if wallet_ids else {}
        balance = {w: int(r["balance_fen"]) for w, r in wallets.items()}
        floor = {w: max(offline_floor_fen, int(r["min_balance_fen"])) for w, r in wallets.items()}
        uses, spent, deltas = self.uses, self.spent, self.deltas
        for i in candidates:
            c = charges[i]
            if c.partner is not None:
                self.partner_limits(i, c, c.partner)
                continue
            cert = certificates[c.device_certificate_serial]
            cert_id, wallet = cert["id"], cert["wallet_id"]
            used = cert["offline_uses"] + uses.get(cert_id, 0)
            amount = cert["offline_amount_fen"] + spent.get(cert_id, 0)
            if used + 1 > cert["max_offline_uses"] or amount + c.amount_fen > cert["max_offline_amount_fen"]:
                self.decide(i, cert, OFFLINE_LIMIT)
            elif balance[wallet] - c.amount_fen < floor[wallet]:
                self.decide(i, cert, OFFLINE_FLOOR)
            else:
                uses[cert_id] = uses.get(cert_id, 0) + 1
                spent[cert_id] = spent.get(cert_id, 0) + c.amount_fen
                balance[wallet] -= c.amount_fen
                deltas[wallet] = deltas.get(wallet, 0) - c.amount_fen
                self.settled, self.settled_fen = self.settled + 1, self.settled_fen + c.amount_fen
                self.decide(i, cert, None)

    def partner_limits(self, i: int, c: ChargeToSettle, partner: PartnerCertificate) -> None:
        """A partner county's ride against its certificate's offline limits (the county owes it: no wallet)."""
        certificate = (partner.issuer, c.device_certificate_serial)
        used, spent = self.partner_use.get(certificate, (0, 0))
        if used + 1 > partner.max_offline_uses or spent + c.amount_fen > partner.max_offline_amount_fen:
            self.decide(i, None, OFFLINE_LIMIT)
            return
        self.partner_use[certificate] = (used + 1, spent + c.amount_fen)
        self.partner_rides, self.partner_fen = self.partner_rides + 1, self.partner_fen + c.amount_fen
        self.decide(i, None, None)

    async def write(self, conn: asyncpg.Connection, fares_account_id: int, now: dt.datetime) -> None:
        """Step 6: every new ride, one journal for what settled, the wallets and the certificates' counters."""
        postings = sorted(self.deltas.items())
        if self.settled_fen:
            postings.append((fares_account_id, self.settled_fen))
        await repository.record_rides(conn, self.rows, postings, reference=f"rides:{uuid.uuid4()}", at=now)
        await repository.add_to_wallets(conn, self.deltas)
        await repository.add_certificate_use(conn, {c: (n, self.spent[c]) for c, n in self.uses.items()})

    def final(self) -> tuple[list[SettlementResult], SettlementSummary]:
        results = [
            r if r is not None else SettlementResult("rejected", UNKNOWN_CERTIFICATE) for r in self.results
        ]
        summary = SettlementSummary(
            settled=self.settled + self.partner_rides,
            duplicates=sum(1 for r in results if r.status == "duplicate"),
            rejected=sum(1 for r in results if r.status == "rejected"),
            amount_fen=self.settled_fen,
            partner_rides=self.partner_rides,
            partner_fen=self.partner_fen,
        )
        return results, summary


def _certificate_reason(c: ChargeToSettle, cert: asyncpg.Record, skew: dt.timedelta) -> str | None:
    """Why the certificate does not cover this record (whose account, amount and time it is), or None."""
    if bytes(cert["account_ref"]) != c.account_ref:
        return ACCOUNT_MISMATCH
    if c.amount_fen <= 0:
        return AMOUNT_INVALID
    if cert["revoked_at"] is not None:
        # A lost phone: once revoked, nothing more is charged to the resident. The loss is the operator's, bounded
        # by the certificate's offline limits.
        return REVOKED
    if c.scanned_at > cert["expires_at"] + skew:
        return CERTIFICATE_EXPIRED
    if c.scanned_at < cert["issued_at"] - skew:
        return NOT_YET_VALID
    return None


def _partner_reason(c: ChargeToSettle, partner: PartnerCertificate, skew: dt.timedelta) -> str | None:
    """Why a partner county's certificate does not cover this record (its amount and time), or None."""
    if c.amount_fen <= 0:
        return AMOUNT_INVALID
    if c.scanned_at > partner.expires_at + skew:
        return CERTIFICATE_EXPIRED
    if c.scanned_at < partner.issued_at - skew:
        return NOT_YET_VALID
    return None
