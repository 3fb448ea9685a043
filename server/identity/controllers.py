"""HTTP routes for login, sessions, the resident's profile and real name, and operator role changes."""

from __future__ import annotations

from typing import Annotated, Any, TypeAlias

from litestar import Controller, Request, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from server.auth import Role, allow
from server.auth.guards import ANY_ACCOUNT, PUBLIC
from server.deps import Caller, Db
from server.errors import NotFound, TooManyRequests, raises
from server.identity import errors, schemas
from server.identity.service import IdentityService, Profile
from server.identity.sms import ConsoleSender
from server.net import client_address
from server.params import RowId
from server.wire import whole

Identity: TypeAlias = NamedDependency[IdentityService]


def _profile(p: Profile) -> schemas.ProfileResponse:
    real = None
    if p.verified and p.name_masked and p.id_number_masked and p.sex:
        real = schemas.RealName(p.name_masked, p.id_number_masked, p.sex)  # type: ignore[arg-type]
    return schemas.ProfileResponse(
        id=p.account_id, phone=p.phone_masked, roles=p.roles, verified=p.verified, real_name=real
    )


class AuthController(Controller):
    path = "/v1/auth"
    tags = ["auth"]

    @post("/otp", status_code=202, opt=allow(PUBLIC) | raises(TooManyRequests), operation_id="requestOtp")
    async def request_otp(
        self, request: Request[Any, Any, Any], data: JSONBody[schemas.OtpRequest], identity: Identity
    ) -> schemas.OtpAccepted:
        """Send a 6-digit login code by SMS. Always 202, whether or not the number has an account."""
        await identity.request_otp(data.phone, client_address(request))
        return schemas.OtpAccepted(status="sent", expires_in=identity.otp_ttl_s)

    @post(
        "/token",
        status_code=200,
        opt=allow(PUBLIC) | raises(errors.OtpInvalid, errors.OtpLocked),
        operation_id="exchangeOtp",
    )
    async def token(self, data: JSONBody[schemas.TokenRequest], identity: Identity) -> schemas.TokenResponse:
        """Exchange phone + code for an access token and a refresh token. Creates the account on first login."""
        pair = await identity.exchange_otp(data.phone, data.code)
        return schemas.TokenResponse(pair.access_token, pair.refresh_token, pair.expires_in)

    @post(
        "/refresh",
        status_code=200,
        opt=allow(PUBLIC) | raises(errors.RefreshInvalid, errors.RefreshReused),
        operation_id="refreshToken",
    )
    async def refresh(
        self, data: JSONBody[schemas.RefreshRequest], identity: Identity
    ) -> schemas.TokenResponse:
        """Rotate the refresh token. Presenting an already-used one ends the whole session."""
        pair = await identity.refresh(data.refresh_token)
        return schemas.TokenResponse(pair.access_token, pair.refresh_token, pair.expires_in)

    @post("/logout", status_code=204, opt=allow(ANY_ACCOUNT), operation_id="logout")
    async def logout(self, principal: Caller, identity: Identity) -> None:
        """End this session: its refresh tokens and access tokens stop working at once."""
        await identity.logout(principal.session_id)


class MeController(Controller):
    path = "/v1/me"
    tags = ["me"]

    @get("", opt=allow(ANY_ACCOUNT) | raises(errors.AccountNotFound), operation_id="getMe")
    async def me(self, principal: Caller, identity: Identity, db: Db) -> schemas.ProfileResponse:
        """The caller's profile; the phone and ID number are masked."""
        return _profile(await identity.profile(db, principal.account_id))

    @put(
        "/identity",
        opt=allow(ANY_ACCOUNT)
        | raises(
            errors.NameInvalid,
            errors.IdNumberInvalid,
            errors.AccountNotFound,
            errors.AlreadyVerified,
            errors.IdNumberTaken,
        ),
        operation_id="setIdentity",
    )
    async def set_identity(
        self, data: JSONBody[schemas.IdentityRequest], principal: Caller, identity: Identity, db: Db
    ) -> schemas.ProfileResponse:
        """Record the real name: the ID number is checked (GB 11643), stored encrypted and never shown unmasked."""
        return _profile(await identity.set_identity(db, principal.account_id, data.name, data.id_number))


_ROLE_ERRORS = raises(errors.OwnRole, errors.RoleNotYours, errors.AccountNotFound)


class AccountAdminController(Controller):
    path = "/v1/admin/accounts"
    tags = ["admin"]

    @get(
        "/{account_id:int}",
        opt=allow(Role.OPERATOR, Role.ADMINISTRATOR) | raises(errors.AccountNotFound),
        operation_id="adminGetAccount",
    )
    async def get_account(self, account_id: RowId, identity: Identity, db: Db) -> schemas.ProfileResponse:
        """An account's masked profile."""
        return _profile(await identity.profile(db, account_id))

    @post(
        "/{account_id:int}/roles",
        status_code=200,
        opt=allow(Role.OPERATOR, Role.ADMINISTRATOR) | _ROLE_ERRORS,
        operation_id="adminGrantRole",
    )
    async def grant(
        self, account_id: RowId, data: JSONBody[schemas.RoleChange], principal: Caller, identity: Identity
    ) -> schemas.RoleChangeResult:
        """Grant a role (audited). Operator and health authority are granted by an administrator only, other roles
        by an operator or an administrator, never to one's own account; the account's sessions are ended."""
        changed = await identity.grant_role(principal, account_id, data.role)
        return schemas.RoleChangeResult(account_id, data.role.value, changed)

    @post(
        "/{account_id:int}/roles/revoke",
        status_code=200,
        opt=allow(Role.OPERATOR, Role.ADMINISTRATOR) | _ROLE_ERRORS,
        operation_id="adminRevokeRole",
    )
    async def revoke(
        self, account_id: RowId, data: JSONBody[schemas.RoleChange], principal: Caller, identity: Identity
    ) -> schemas.RoleChangeResult:
        """Revoke a role (audited), by the same rule as granting it; it ends at once, with the account's sessions."""
        changed = await identity.revoke_role(principal, account_id, data.role)
        return schemas.RoleChangeResult(account_id, data.role.value, changed)


class DevOutboxController(Controller):
    """Registered only in development mode."""

    path = "/v1/dev"
    tags = ["dev"]

    @get("/sms-outbox", opt=allow(PUBLIC) | raises(NotFound), operation_id="devSmsOutbox")
    async def outbox(
        self,
        request: Request[Any, Any, Any],
        phone: Annotated[str, QueryParameter(pattern=whole("1[3-9][0-9]{9}"))],
    ) -> list[schemas.SmsOutboxEntry]:
        """Messages the console SMS sender 'sent' to a number, newest last."""
        sender = request.app.state.identity.sms
        if not isinstance(sender, ConsoleSender):
            raise NotFound()
        return [
            schemas.SmsOutboxEntry(m.phone, m.params.get("code", ""), m.template, m.message_id, m.sent_at)
            for m in sender.messages_for(phone)
        ]
