"""HTTP routes of what residents do with mini-apps: the catalog, app sessions for pages, consent, the inbox
and payments."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Response, delete, get, post, put
from litestar.params import FromPath, JSONBody, QueryParameter
from yima_sdk.codes import CredentialError

from server.auth import allow
from server.auth.guards import ANY_ACCOUNT
from server.credentials.rendering import render_png
from server.deps import Caller, Db
from server.errors import raises
from server.params import INT64_MAX, RowId
from server.platform import errors as e
from server.platform import schemas
from server.platform.residents import repository
from server.platform.service import PlatformDep


def _payment(r: Any, refunds: list[schemas.PaymentRefund] | None = None) -> schemas.Payment:
    return schemas.Payment(
        id=r["id"],
        app_id=r["app_id"],
        amount_fen=r["amount_fen"],
        reason=r["reason"],
        status=r["status"],
        created_at=r["created_at"],
        failure=r["failure"],
        decided_at=r["decided_at"],
        refunded_fen=r["refunded_fen"],
        refunds=refunds or [],
    )


class ResidentPlatformController(Controller):
    path = "/v1"
    tags = ["miniapps"]

    @get("/miniapps", opt=allow(ANY_ACCOUNT), operation_id="miniappCatalog")
    async def catalog(self, principal: Caller, platform: PlatformDep, db: Db) -> list[schemas.CatalogEntry]:
        """Released mini-apps available to you (the version your phased-release group gets), with the data
        scopes each asks for (and `pass_share:<app>`: other apps that may honour its passes), why, and what
        you decided."""
        decided = {
            (r["app_id"], r["scope"]): r["granted"]
            for r in await repository.consents(db, principal.account_id)
        }
        entries = []
        for live in sorted(platform.runtime.apps.values(), key=lambda a: a.name):
            version = None if live.suspended else live.version_for(principal.account_id)
            if version is None:
                continue
            scopes = [
                schemas.Scope(name, purpose, _state(decided.get((live.app_id, name))))
                for name, purpose in sorted(version.consent_scopes.items())
            ]
            page = await platform.ui.page(version)
            entries.append(schemas.CatalogEntry(live.app_id, live.name, version.version, scopes, page))
        return entries

    @post(
        "/me/miniapps/{app_id:str}/session",
        status_code=201,
        opt=allow(ANY_ACCOUNT) | raises(e.AppNotFound, e.AppSuspended, e.AppUnavailable),
        operation_id="openMiniappSession",
    )
    async def app_session(
        self, app_id: FromPath[str], principal: Caller, platform: PlatformDep
    ) -> schemas.AppSession:
        """An app-scoped session for the app's page (what the shell hands its iframe; your own token stays with
        the shell): a short-lived `yas_` token valid on this app's gateway only, and your id in this app."""
        platform.runtime.resolve(app_id, principal.account_id)  # released to you and not suspended
        issued = await platform.app_sessions.issue(principal.account_id, principal.session_id, app_id)
        return schemas.AppSession(app_id, issued.token, issued.expires_in, issued.user_id)

    @post(
        "/me/miniapps/{app_id:str}/passes/qr",
        status_code=200,
        opt=allow(ANY_ACCOUNT) | raises(e.AppNotFound, e.PassInvalid, e.PassNotFound),
        operation_id="showMiniappPass",
        media_type="image/png",
    )
    async def show_pass(
        self,
        app_id: FromPath[str],
        data: JSONBody[schemas.PassToShow],
        principal: Caller,
        platform: PlatformDep,
    ) -> Response[bytes]:
        """One of this app's passes held by you, as a PNG QR image (error correction M, as your code), for the
        shell to show full-screen when the app's page asks (yima.showPass). Only a pass signed by the platform,
        issued by this very app, neither expired nor revoked, and held by you: a page cannot get the shell to
        show another app's pass, another resident's, or a forged one."""
        if app_id not in platform.runtime.apps:
            raise e.AppNotFound()
        try:
            await platform.caps.passes.held(app_id, principal.account_id, data.payload)
        except CredentialError as exc:
            if exc.code in {"credential.other_app", "credential.not_holder"}:
                raise e.PassNotFound() from None
            raise e.PassInvalid(extra={"reason": exc.code}) from None
        return Response(
            render_png(data.payload), media_type="image/png", headers={"cache-control": "no-store"}
        )

    @get("/me/consents", opt=allow(ANY_ACCOUNT), operation_id="listConsents")
    async def consents(self, principal: Caller, db: Db) -> list[schemas.Consent]:
        """Every scope decision you made, per app."""
        rows = await repository.consents(db, principal.account_id)
        return [schemas.Consent(r["app_id"], r["scope"], r["granted"], r["decided_at"]) for r in rows]

    @put(
        "/me/consents/{app_id:str}/{scope_name:str}",
        opt=allow(ANY_ACCOUNT) | raises(e.AppNotFound, e.UnknownScope),
        operation_id="decideConsent",
    )
    async def decide(
        self,
        app_id: FromPath[str],
        scope_name: FromPath[str],
        data: JSONBody[schemas.ConsentDecision],
        principal: Caller,
        platform: PlatformDep,
        db: Db,
    ) -> schemas.Consent:
        """Grant or refuse one scope to one app (audited)."""
        async with platform.core.db.transaction() as conn:  # committed before every worker is told
            await platform.residents.decide(conn, principal.account_id, app_id, scope_name, data.granted)
        await platform.caps.consents.changed(principal.account_id)
        rows = await repository.consents(db, principal.account_id, app_id)
        r = next(r for r in rows if r["scope"] == scope_name)
        return schemas.Consent(r["app_id"], r["scope"], r["granted"], r["decided_at"])

    @delete(
        "/me/consents/{app_id:str}/{scope_name:str}",
        status_code=204,
        opt=allow(ANY_ACCOUNT) | raises(e.AppNotFound, e.UnknownScope),
        operation_id="revokeConsent",
    )
    async def revoke(
        self,
        app_id: FromPath[str],
        scope_name: FromPath[str],
        principal: Caller,
        platform: PlatformDep,
    ) -> None:
        """Withdraw a scope; every worker denies the app from its next request on."""
        async with platform.core.db.transaction() as conn:
            await platform.residents.revoke(conn, principal.account_id, app_id, scope_name)
        await platform.caps.consents.changed(principal.account_id)

    @get("/me/inbox", opt=allow(ANY_ACCOUNT), operation_id="myInbox")
    async def inbox(
        self,
        principal: Caller,
        platform: PlatformDep,
        db: Db,
        before: Annotated[int | None, QueryParameter(ge=1, le=INT64_MAX)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 30,
    ) -> list[schemas.InboxMessage]:
        """Messages mini-apps sent you, newest first (`before` = the last id you have, for the next page)."""
        rows = await platform.residents.inbox(db, principal.account_id, before, limit)
        return [
            schemas.InboxMessage(r["id"], r["app_id"], r["app_name"], r["title"], r["body"], r["created_at"])
            for r in rows
        ]

    @get("/me/payments", opt=allow(ANY_ACCOUNT), operation_id="myMiniappPayments")
    async def payments(self, principal: Caller, db: Db) -> list[schemas.Payment]:
        """Mini-app payments, newest first: pending ones wait for your confirmation; what an app refunded of a
        payment is in its `refunded_fen` and `refunds` (the money is back on your one-card)."""
        rows = await repository.payments_of(db, principal.account_id, 50)
        refunds: dict[int, list[schemas.PaymentRefund]] = {}
        refunded = [r["id"] for r in rows if r["refunded_fen"]]
        for f in await repository.refunds_of(db, refunded) if refunded else []:
            refunds.setdefault(f["payment_id"], []).append(
                schemas.PaymentRefund(f["amount_fen"], f["refunded_at"], f["reason"])
            )
        return [_payment(r, refunds.get(r["id"])) for r in rows]

    @post(
        "/me/payments/{payment_id:int}/confirm",
        status_code=200,
        opt=allow(ANY_ACCOUNT) | raises(e.PaymentNotFound, e.PaymentDecided),
        operation_id="confirmPayment",
    )
    async def confirm(
        self, payment_id: RowId, principal: Caller, platform: PlatformDep, db: Db
    ) -> schemas.Payment:
        """Confirm a pending payment: the one-card is charged once (status succeeded, or failed with a code)."""
        return _payment(await platform.residents.confirm(db, principal.account_id, payment_id))

    @post(
        "/me/payments/{payment_id:int}/decline",
        status_code=200,
        opt=allow(ANY_ACCOUNT) | raises(e.PaymentNotFound, e.PaymentDecided),
        operation_id="declinePayment",
    )
    async def decline(
        self, payment_id: RowId, principal: Caller, platform: PlatformDep, db: Db
    ) -> schemas.Payment:
        """Decline a pending payment; nothing is charged."""
        return _payment(await platform.residents.decline(db, principal.account_id, payment_id))


def _state(granted: bool | None) -> Literal["granted", "refused", "not_asked"]:
    return "not_asked" if granted is None else ("granted" if granted else "refused")
