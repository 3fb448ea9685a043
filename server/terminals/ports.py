"""What the terminals domain needs of other domains, in its own types: each port a Protocol that the app passes in
when the plugins start (server/app.py), so mypy checks every call across and nothing here imports the provider.

- `ResidentNames`: a resident's masked name, for scenes that show it (identity provides it).
- `CodeCredentials`: what a scan checks a code against: the trust list, the subject behind our own codes, the
  revocations and a resident's code generation (credentials).
- `OfflineSettlement`: the ride charges of an offline upload, settled in the upload's transaction (one-card).
- `SceneDocuments`: the documents the app bound to a terminal's scene published for its terminals, and its fare
  tables, by which settlement re-prices offline rides (the platform).
- `SceneLists`: the changes of the lists that app holds for the terminal's staff unit (the platform).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import asyncpg
from yima_sdk.codes import Verifier
from yima_sdk.fares import FareSchedule
from yima_sdk.lists import ListChanges


class ResidentNames(Protocol):
    """What a scan needs of identity: the resident's masked name."""

    async def masked_name(self, account_id: int) -> str | None: ...


class CodeSubject(Protocol):
    """The resident behind one of our own codes, and the code generation it was issued in."""

    @property
    def account_id(self) -> int: ...
    @property
    def generation(self) -> int: ...


class TrustList(Protocol):
    """The issuer keys terminals accept: our issuer number, the clock tolerance, and the verifier over them."""

    @property
    def issuer(self) -> int: ...
    @property
    def clock_skew_s(self) -> float: ...
    @property
    def verifier(self) -> Verifier: ...

    async def recheck_for_unknown_key(self, conn: asyncpg.Connection | None = None) -> bool:
        """A code named a key not in the list: whether a newer list (now loaded) holds more keys."""
        ...


class SubjectRefs(Protocol):
    def open(self, ref: bytes) -> CodeSubject | None:
        """The subject of one of our codes' references, or None when the reference is not one of ours."""
        ...


class AnkangCodes(Protocol):
    @property
    def refs(self) -> SubjectRefs: ...

    async def generation(self, account_id: int) -> int:
        """The resident's current code generation (codes of older generations are revoked), from PostgreSQL."""
        ...

    @staticmethod
    def generation_key(account_id: int) -> str:
        """The shared-cache key of the resident's current code generation, once it revoked codes."""
        ...


class Revocations(Protocol):
    def revoked_at(self, issuer: int, kind: str, ref: bytes) -> datetime | None:
        """When this subject ref ("subject") or certificate serial ("device_certificate") was revoked, or None."""
        ...


class CodeCredentials(Protocol):
    """What the terminals need of credentials to check a scanned code."""

    @property
    def trust(self) -> TrustList: ...
    @property
    def ankang(self) -> AnkangCodes: ...
    @property
    def revocations(self) -> Revocations: ...


@dataclass(frozen=True, slots=True)
class PartnerCertificate:
    """A partner county's device certificate behind an offline ride code (一卡通行), as verified against the trust
    list: the ride is that county's to pay, within the limits the certificate states."""

    issuer: int
    issued_at: datetime
    expires_at: datetime
    """The window the verified ride code is valid in (inside its certificate's)."""
    max_offline_uses: int
    max_offline_amount_fen: int


@dataclass(frozen=True, slots=True)
class OfflineCharge:
    """One accepted offline ride record to charge, after the server re-verified its codes."""

    account_ref: bytes
    """The code's subject reference (the one-card account it was issued for)."""
    device_certificate_serial: bytes
    amount_fen: int
    record_id: str
    terminal_id: str
    scanned_at: datetime
    terminal_fen: int | None = None
    """What the terminal asked, when `amount_fen` is the ride re-priced by the fare table in force at the ride
    (the scene's app's published `fares`); None when it is charged as the terminal asked."""
    scan_id: str | None = None
    """The platform's id of the scan; the app bound to the scene names the ride by it (`ride_<scan id>`)."""
    app_id: str | None = None
    """The app bound to the terminal's scene: it may refund part of the ride (the rider's concession, transfer
    or cap, which only it knows), never more than was charged."""
    partner: PartnerCertificate | None = None
    """A partner county's ride code: settled as a ride that county owes, not charged to a one-card here."""


class SettlementOutcome(Protocol):
    @property
    def status(self) -> str:
        """ "settled", "duplicate" or "rejected"."""
        ...

    @property
    def reason(self) -> str | None:
        """Why a charge was rejected (a stable reason code), None otherwise."""
        ...

    @property
    def account_id(self) -> int | None:
        """The resident whose one-card a settled ride was charged to (a ride code names a one-card, not a
        resident: the scene's app learns the rider from this, if the rider uses it), None otherwise."""
        ...


class OfflineSettlement(Protocol):
    async def settle_offline_charges(
        self, conn: asyncpg.Connection, charges: Sequence[OfflineCharge]
    ) -> Sequence[SettlementOutcome]:
        """One outcome per charge, in order; idempotent per (terminal, record id); runs in `conn`'s transaction."""
        ...

    async def ride_code_owners(self, conn: asyncpg.Connection, serials: Sequence[bytes]) -> dict[bytes, int]:
        """The resident whose one-card each of these device certificates (our own) was issued for, by serial;
        an unknown serial is left out. A tap-off charges nothing, so settlement does not name its rider."""
        ...


class SceneDocuments(Protocol):
    """What the terminals need of the platform: what the app bound to a scene published for its terminals."""

    async def envelopes(self, kind: str, scene: str) -> list[bytes]:
        """Every published version of every document, each its signed envelope (yima_sdk.documents), in a stable
        order; empty when no app is bound to the scene or it published nothing."""
        ...

    async def fare_schedule(self, conn: asyncpg.Connection, kind: str, scene: str) -> FareSchedule | None:
        """The scene's app's published `fares` versions, read on `conn`; None when it published none."""
        ...


class SceneLists(Protocol):
    """What the terminals need of the platform: the lists the app bound to a scene holds for a staff unit."""

    async def changes(self, kind: str, scene: str, unit: str | None, after: int) -> ListChanges:
        """The changes of the unit's lists after change `after` (yima_sdk.lists); none without a unit or an app
        bound to the scene."""
        ...

    async def prune_expired(self) -> tuple[int, int]:
        """Unbind every expired entry from its resident, remove those expired a day (run periodically)."""
        ...
