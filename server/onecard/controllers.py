"""HTTP routes of the one-card: the resident's account, statements, top-ups and devices; the provider's
notification; the operator's reconciliation report."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, TypeAlias

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter

from server.auth import Role, allow
from server.auth.guards import PUBLIC
from server.deps import Caller, Db
from server.errors import raises
from server.idempotency import IdempotencyKeyReused
from server.onecard import errors, schemas
from server.onecard.service import OnecardService
from server.onecard.topups.service import Topups
from server.params import RowId
from server.wire import IdempotencyKey, whole

Onecard: TypeAlias = NamedDependency[OnecardService]
TopupService: TypeAlias = NamedDependency[Topups]


class OnecardController(Controller):
    path = "/v1/me/onecard"
    tags = ["onecard"]

    @post(
        "",
        status_code=200,
        opt=allow(Role.RESIDENT)
        | raises(
            errors.CardNumberInvalid,
            errors.IdentityRequired,
            errors.CardNotYours,
            errors.AlreadyOpen,
            errors.CardTaken,
        ),
        operation_id="openOnecard",
    )
    async def open(
        self, data: JSONBody[schemas.OpenAccountRequest], principal: Caller, onecard: Onecard, db: Db
    ) -> schemas.OnecardResponse:
        """Open the caller's one-card linked to their social security card (real name required). Linking the same
        card again answers the same account; one card, one account."""
        view = await onecard.open_account(db, principal.account_id, data.ss_card_number)
        return schemas.OnecardResponse(
            view.balance_fen, view.card_number_masked, view.ecard_status, view.opened_at
        )

    @get("", opt=allow(Role.RESIDENT) | raises(errors.NotOpen), operation_id="getOnecard")
    async def show(self, principal: Caller, onecard: Onecard, db: Db) -> schemas.OnecardResponse:
        """Balance (fen), masked card number and electronic card status."""
        view = await onecard.view(db, principal.account_id)
        return schemas.OnecardResponse(
            view.balance_fen, view.card_number_masked, view.ecard_status, view.opened_at
        )

    @get(
        "/statements",
        opt=allow(Role.RESIDENT) | raises(errors.NotOpen, errors.MonthInvalid),
        operation_id="getOnecardStatement",
    )
    async def statement(
        self,
        month: Annotated[
            str,
            QueryParameter(pattern=whole("[0-9]{4}-[0-9]{2}"), description="YYYY-MM (China Standard Time)"),
        ],
        principal: Caller,
        onecard: Onecard,
        db: Db,
    ) -> schemas.StatementResponse:
        """The month's statement: opening and closing balance and every movement with the balance after it."""
        return msgspec.convert(
            msgspec.to_builtins(await onecard.statement(db, principal.account_id, month)),
            schemas.StatementResponse,
        )

    @post(
        "/topups",
        status_code=201,
        opt=allow(Role.RESIDENT)
        | raises(errors.AmountInvalid, errors.NotOpen, errors.ProviderUnavailable, IdempotencyKeyReused),
        operation_id="createTopup",
    )
    async def topup(
        self,
        data: JSONBody[schemas.TopupRequest],
        idempotency_key: Annotated[IdempotencyKey, HeaderParameter(name="Idempotency-Key")],
        principal: Caller,
        topups: TopupService,
        db: Db,
    ) -> schemas.TopupResponse:
        """Create a top-up order at the payment provider; pay with the returned URL/params. Send the same
        Idempotency-Key when retrying: the same order comes back."""
        order = await topups.create(db, principal.account_id, data.amount_fen, idempotency_key)
        return schemas.TopupResponse(
            order.order_no, order.amount_fen, order.state, order.pay_url, order.pay_params, order.expires_at
        )

    @get(
        "/topups/{order_no:str}",
        opt=allow(Role.RESIDENT) | raises(errors.UnknownOrder, errors.ProviderUnavailable),
        operation_id="getTopup",
    )
    async def topup_status(
        self, order_no: FromPath[str], principal: Caller, topups: TopupService, db: Db
    ) -> schemas.TopupStatusResponse:
        """A top-up's state; while it is not final the provider is asked, so a lost notification cannot strand it."""
        row = await topups.status(db, principal.account_id, order_no)
        if row["state"] in ("pending", "paying", "expired"):
            await topups.sync(db, order_no)
            row = await topups.status(db, principal.account_id, order_no)
        return schemas.TopupStatusResponse(
            row["order_no"], row["amount_fen"], row["state"], row["credited_at"] is not None
        )


class DeviceController(Controller):
    path = "/v1/me/devices"
    tags = ["onecard"]

    @post(
        "",
        status_code=201,
        opt=allow(Role.RESIDENT)
        | raises(errors.NotOpen, errors.DeviceKeyInvalid, errors.InDebt, errors.TooManyDevices),
        operation_id="certifyDevice",
    )
    async def certify(
        self, data: JSONBody[schemas.DeviceRequest], principal: Caller, onecard: Onecard, db: Db
    ) -> schemas.DeviceCertificateResponse:
        """Certify this phone's Ed25519 key for offline ride codes: a signed device certificate binding the
        one-card's pseudonymous reference, the key, an expiry and offline limits (uses and amount)."""
        issued = await onecard.offline.register_device(db, principal.account_id, data.public_key)
        return msgspec.convert(msgspec.to_builtins(issued), schemas.DeviceCertificateResponse)

    @delete(
        "/{device_id:int}",
        status_code=200,
        opt=allow(Role.RESIDENT) | raises(errors.NotOpen, errors.DeviceNotFound),
        operation_id="revokeDevice",
    )
    async def revoke(self, device_id: RowId, principal: Caller, onecard: Onecard) -> schemas.DeviceRevoked:
        """Revoke a device certificate (lost phone): it enters the revocation deltas terminals fetch, and offline
        records made with it are no longer charged."""
        revoked_at = await onecard.offline.revoke_device(principal.account_id, device_id)
        return schemas.DeviceRevoked(device_id, revoked_at)


class PaymentNotifyController(Controller):
    path = "/v1/payments"
    tags = ["payments"]

    @post(
        "/notify",
        status_code=200,
        opt=allow(PUBLIC) | raises(errors.NotificationMalformed, errors.NotificationInvalid),
        operation_id="paymentNotify",
    )
    async def notify(self, request: Request[Any, Any, Any], topups: TopupService) -> schemas.NotifyAck:
        """The payment provider's asynchronous notification (signature checked). Credits a paid top-up exactly
        once however often, late or out of order notifications arrive; non-2xx makes the provider retry."""
        body = await request.body()
        outcome = await topups.handle_notification(dict(request.headers), body)
        return schemas.NotifyAck(outcome=outcome)


class ReconciliationController(Controller):
    path = "/v1/admin/onecard"
    tags = ["admin"]

    @get(
        "/reconciliation",
        opt=allow(Role.OPERATOR) | raises(errors.DateInvalid, errors.ProviderUnavailable),
        operation_id="onecardReconciliation",
    )
    async def reconciliation(
        self,
        date: Annotated[
            str, QueryParameter(pattern=whole("[0-9]{4}-[0-9]{2}-[0-9]{2}"), description="YYYY-MM-DD (CST)")
        ],
        topups: TopupService,
    ) -> schemas.ReconciliationResponse:
        """Daily reconciliation: every difference between the provider's bill and our ledger for that day."""
        try:
            day = dt.date.fromisoformat(date)
        except ValueError:
            raise errors.DateInvalid() from None
        report = await topups.reconcile(day)
        return msgspec.convert(msgspec.to_builtins(report), schemas.ReconciliationResponse)
