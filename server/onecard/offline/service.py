"""Device certificates for offline ride codes (certify a phone's key, revoke a lost one) and the settlement of the
offline rides terminals upload (the money rules are in `settlement.py`)."""

from __future__ import annotations

import binascii
import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncpg
from yima_sdk.codes import public_key_valid

from server import audit
from server.idempotency import run_once
from server.onecard import errors, repository
from server.onecard.offline import repository as offline_repository
from server.onecard.offline.settlement import (
    ChargeToSettle,
    OfflineCharge,
    SettlementResult,
    SettlementSummary,
    settle,
)
from server.onecard.results import IssuedCertificate, RefundResult
from server.wire import b64url, b64url_decode

if TYPE_CHECKING:
    from server.onecard.service import OnecardService

log = logging.getLogger("yima.onecard")

ISSUER_PURPOSE = "issuer"
_NO_FLOOR = -(2**62)  # a refund credits the wallet whatever its balance


class OfflineRides:
    """The offline part of a one-card service (`OnecardService.offline`): it reads the service's clock, config,
    keys, cards and revocation publisher."""

    def __init__(self, onecard: OnecardService) -> None:
        self._onecard = onecard

    # -- device certificates -----------------------------------------------------------------------------------

    async def register_device(
        self, conn: asyncpg.Connection, account_id: int, public_key: str
    ) -> IssuedCertificate:
        """Certify a phone's Ed25519 key for offline ride codes, with the configured offline limits."""
        from yima_sdk.codes import decode_device_certificate, issue_device_certificate

        try:
            raw_key = b64url_decode(public_key)
        except (ValueError, binascii.Error):
            raise errors.DeviceKeyInvalid() from None
        # A key of small order would make every signature under it worthless (or, to a lax verifier, any).
        if not public_key_valid(raw_key):
            raise errors.DeviceKeyInvalid()
        card = await self._onecard.card(conn, account_id)
        await offline_repository.lock_card(conn, card["id"])
        now = self._onecard.clock()
        if card["balance_fen"] < 0:
            raise errors.InDebt()
        if (
            await offline_repository.count_active_certificates(conn, card["id"], now)
            >= self._onecard.config.max_active_certificates
        ):
            raise errors.TooManyDevices()
        key = await self._onecard.keys.active(ISSUER_PURPOSE)
        issued_at = int(now.timestamp())
        cfg = self._onecard.config
        raw = issue_device_certificate(
            key.private_key,
            bytes.fromhex(key.kid),
            cfg.issuer,
            bytes(card["account_ref"]),
            raw_key,
            issued_at,
            cfg.certificate_lifetime_h,
            cfg.max_offline_uses,
            cfg.max_offline_amount_fen,
        )
        certificate = decode_device_certificate(raw)
        issued = dt.datetime.fromtimestamp(issued_at, dt.UTC)
        expires = dt.datetime.fromtimestamp(certificate.expires_at, dt.UTC)
        cert_id = await offline_repository.insert_certificate(
            conn,
            serial=certificate.serial,
            card_id=card["id"],
            issuer=cfg.issuer,
            key_id=key.kid,
            device_public_key=raw_key,
            issued_at=issued,
            expires_at=expires,
            max_offline_uses=cfg.max_offline_uses,
            max_offline_amount_fen=cfg.max_offline_amount_fen,
        )
        await audit.append(
            conn,
            actor=f"account:{account_id}",
            action="onecard.device_certified",
            target=f"onecard_device:{cert_id}",
            details={"serial": certificate.serial.hex()},
        )
        return IssuedCertificate(
            cert_id,
            certificate.serial.hex(),
            b64url(raw),
            key.kid,
            issued,
            expires,
            cfg.max_offline_uses,
            cfg.max_offline_amount_fen,
        )

    async def revoke_device(self, account_id: int, cert_id: int) -> dt.datetime:
        """Revoke a device certificate (lost phone) and publish it in the revocation deltas; idempotent.

        Runs its own transaction: the revocation list must be committed before every worker is told to reload it.
        """
        actor = f"account:{account_id}"
        async with self._onecard.db.transaction() as conn:
            card = await self._onecard.card(conn, account_id)
            row = await offline_repository.revoke_certificate(
                conn, cert_id, card["id"], self._onecard.clock(), "device_lost"
            )
            if row is None:
                raise errors.DeviceNotFound()
            if row["newly"]:
                # Listed until the certificate could no longer be accepted anyway.
                await self._onecard.revocations.revoke_device_certificate(
                    conn,
                    actor=actor,
                    serial=bytes(row["serial"]),
                    expires_at=row["expires_at"]
                    + dt.timedelta(seconds=self._onecard.config.offline_clock_skew_s),
                    reason="device_lost",
                )
                await audit.append(
                    conn,
                    actor=actor,
                    action="onecard.device_revoked",
                    target=f"onecard_device:{cert_id}",
                    details={"serial": bytes(row["serial"]).hex()},
                )
        if row["newly"]:
            await self._onecard.revocations.announce()
        return row["revoked_at"]  # type: ignore[no-any-return]

    async def devices(self, conn: asyncpg.Connection, account_id: int) -> list[asyncpg.Record]:
        card = await self._onecard.card(conn, account_id)
        return await offline_repository.list_certificates(conn, card["id"])

    # -- offline settlement (the terminals' port, through OnecardService) -------------------------------------------------

    async def settle_offline_charges(
        self, conn: asyncpg.Connection, charges: Sequence[ChargeToSettle]
    ) -> list[SettlementResult]:
        """Settle a whole batch in a few statements; same rules as `settle_offline_charge`, one result each."""
        if not charges:
            return []
        results, summary = await settle(
            conn,
            charges,
            fares_account_id=await self._onecard.system_account(conn, "system:transit_fares"),
            offline_floor_fen=self._onecard.config.offline_floor_fen,
            clock_skew_s=self._onecard.config.offline_clock_skew_s,
            now=self._onecard.clock(),
        )
        if summary.settled:
            await self._audit_settlement(conn, charges[0].terminal_id, summary)
        return results

    async def refund_ride(
        self,
        conn: asyncpg.Connection,
        *,
        scan_id: str,
        app_id: str,
        amount_fen: int,
        idempotency_key: str,
        reason: str,
    ) -> RefundResult:
        """Give back part of a settled offline ride to the card it was charged to, once per idempotency key; only
        the app bound to the ride's scene may, and refunds never exceed what the ride charged. The money comes
        back from the transit fares account that settlement paid it into.

        Raises ChargeNotFound (no settled ride of this app by that scan id), RefundExceedsCharge,
        IdempotencyKeyReused, AmountInvalid."""
        if amount_fen <= 0 or not reason.strip() or len(reason) > 200:
            raise errors.AmountInvalid(
                "A refund needs a positive amount and a reason of at most 200 characters"
            )
        try:
            scan = uuid.UUID(scan_id)
        except ValueError:
            raise errors.ChargeNotFound() from None
        onecard = self._onecard

        async def operation() -> RefundResult:
            ride = await offline_repository.ride_for_refund(conn, scan, app_id)
            if ride is None:
                raise errors.ChargeNotFound()
            if ride["refunded_fen"] + amount_fen > ride["amount_fen"]:
                raise errors.RefundExceedsCharge()
            refunded = await offline_repository.add_ride_refunded(conn, scan, amount_fen)
            balance = await repository.adjust_wallet(conn, ride["wallet_id"], amount_fen, _NO_FLOOR)
            assert balance is not None
            fares = await onecard.system_account(conn, "system:transit_fares")
            await repository.post_journal(
                conn,
                "refund",
                f"ride_refund:{scan}:{idempotency_key}",
                [(ride["wallet_id"], amount_fen), (fares, -amount_fen)],
                onecard.clock(),
            )
            await audit.append(
                conn,
                actor=f"app:{app_id}",
                action="onecard.ride_refunded",
                target=f"onecard:{ride['onecard_account_id']}",
                details={"scan_id": str(scan), "amount_fen": amount_fen, "reason": reason[:200]},
            )
            return RefundResult(0, amount_fen, refunded, balance)

        result, _ = await run_once(
            conn,
            scope=f"onecard.ride_refund:{scan}",
            key=idempotency_key,
            request={"amount_fen": amount_fen, "reason": reason},
            result_type=RefundResult,
            operation=operation,
        )
        return result

    async def _audit_settlement(
        self, conn: asyncpg.Connection, terminal_id: str, s: SettlementSummary
    ) -> None:
        # One record per upload, not per ride: the journals are the per-ride record.
        await audit.append(
            conn,
            actor=f"terminal:{terminal_id}",
            action="onecard.offline_settled",
            target=f"terminal:{terminal_id}",
            details={
                "settled": s.settled,
                "duplicates": s.duplicates,
                "rejected": s.rejected,
                "amount_fen": s.amount_fen,
                "partner_rides": s.partner_rides,
                "partner_fen": s.partner_fen,
            },
        )

    async def settle_offline_charge(
        self,
        conn: asyncpg.Connection,
        *,
        account_ref: bytes,
        device_certificate_serial: bytes,
        amount_fen: int,
        record_id: str,
        terminal_id: str,
        scanned_at: dt.datetime,
    ) -> SettlementResult:
        """Settle one re-verified offline record: idempotent per (terminal_id, record_id)."""
        charge = OfflineCharge(
            account_ref, device_certificate_serial, amount_fen, record_id, terminal_id, scanned_at
        )
        return (await self.settle_offline_charges(conn, [charge]))[0]
