"""HTTP routes of the developer device login: start (the CLI), confirm (the signed-in developer), token (the CLI)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.params import JSONBody

from server.auth import Role, allow
from server.auth.guards import PUBLIC
from server.deps import Caller
from server.errors import TooManyRequests, raises
from server.net import client_address
from server.platform.device_login import errors as e
from server.platform.device_login import schemas
from server.platform.schemas import DeveloperToken
from server.platform.service import PlatformDep


class DeviceLoginController(Controller):
    path = "/v1/developer/device"
    tags = ["developer"]

    @post("/", status_code=201, opt=allow(PUBLIC) | raises(TooManyRequests), operation_id="startDeviceLogin")
    async def start(
        self, request: Request[Any, Any, Any], platform: PlatformDep
    ) -> schemas.DeviceAuthorization:
        """Start a sign-in for a CLI (`yima-sdk login`): a secret device code to poll with and a short user code
        for the developer to confirm. Both expire after `expires_in` seconds."""
        started = await platform.device_login.start(client_address(request))
        return schemas.DeviceAuthorization(
            device_code=started.device_code,
            user_code=started.user_code,
            verification_uri=platform.device_login.verification_uri,
            expires_in=started.expires_in,
            interval=started.interval,
        )

    @post(
        "/confirm",
        status_code=204,
        opt=allow(Role.DEVELOPER) | raises(e.UserCodeUnknown, e.Expired, TooManyRequests),
        operation_id="confirmDeviceLogin",
    )
    async def confirm(
        self, data: JSONBody[schemas.UserCodeConfirmation], principal: Caller, platform: PlatformDep
    ) -> None:
        """Confirm the user code a CLI shows, as the signed-in developer: that CLI then receives a developer
        token of this account. Confirm only a code you see on your own screen."""
        await platform.device_login.confirm(principal.account_id, data.user_code)

    @post(
        "/token",
        status_code=200,
        opt=allow(PUBLIC)
        | raises(e.AuthorizationPending, e.SlowDown, e.DeviceCodeInvalid, e.DeviceCodeUsed, e.Expired),
        operation_id="pollDeviceLogin",
    )
    async def token(
        self, data: JSONBody[schemas.DeviceTokenRequest], platform: PlatformDep
    ) -> DeveloperToken:
        """Poll with the device code: the developer token once the user code is confirmed (only once), else
        400 `device.authorization_pending`, 429 `device.slow_down`, 410 `device.expired`."""
        issued = await platform.device_login.poll(data.device_code)
        return DeveloperToken(issued.token, issued.token_id, issued.created_at)
