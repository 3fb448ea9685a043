"""The gateway: `/v1/miniapps/{app_id}/api/{path}` -> the released version for this resident -> quotas per
app and per resident -> the staff role a staff-only route needs -> the sandboxed app -> its answer, within size limits, with failures as stable codes.

Consent is enforced where data leaves the platform: when the app asks `ctx.user` for a scope.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from yima_sdk import Request
from yima_sdk._staff import route_role
from yima_sdk.contract import answer_headers

from sandbox import CallerGone, HungUp, SandboxError
from server.core import Core
from server.errors import ClientClosedRequest
from server.platform import errors as e
from server.platform.config import PlatformSettings
from server.platform.runtime.capabilities import PlatformCapabilities
from server.platform.runtime.service import Runtime
from server.platform.staff import repository as staff_repository
from server.platform.staff.errors import StaffRequired

# Only these travel to the app and back: no cookies, no authorization, nothing that identifies the resident.
FORWARDED_REQUEST_HEADERS = frozenset(
    {"content-type", "accept", "accept-language", "if-none-match", "if-match"}
)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class Gateway:
    def __init__(
        self, core: Core, runtime: Runtime, caps: PlatformCapabilities, config: PlatformSettings
    ) -> None:
        self.core = core
        self.runtime = runtime
        self.caps = caps
        self.config = config

    async def _quota(self, app_id: str, account_id: int, per_app: int, per_resident: int) -> None:
        app_refusal = lambda retry_after_s: e.QuotaExceeded(  # noqa: E731
            "This mini-app has reached its request rate; try again shortly",
            retry_after_s=retry_after_s,
            code="miniapp.quota_app",
        )
        resident_refusal = lambda retry_after_s: e.QuotaExceeded(  # noqa: E731
            "You are sending this mini-app too many requests; try again shortly",
            retry_after_s=retry_after_s,
            code="miniapp.quota_resident",
        )
        await self.core.rate_limits.enforce_all(  # both windows in one round trip
            [
                (f"mq:{app_id}", per_app, app_refusal),
                (f"mq:{app_id}:{account_id}", per_resident, resident_refusal),
            ],
            window_s=60,
        )

    async def call(
        self,
        account_id: int,
        app_id: str,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        hung_up: HungUp | None = None,
    ) -> Answer:
        """`hung_up` returns once the client has gone: a call still waiting for a worker then leaves the queue."""
        version = self.runtime.resolve(app_id, account_id)
        live = self.runtime.apps[app_id]
        if len(body) > self.config.max_request_bytes:
            raise e.RequestTooLarge(extra={"limit": self.config.max_request_bytes})
        await self._quota(app_id, account_id, live.calls_per_minute, live.resident_calls_per_minute)
        role = route_role(version.staff, method, path)
        if role is not None:
            # [staff.routes]: refused here, before the app runs; read on every call, so a revoke holds at once
            async with self.core.db.connection() as conn:
                held = await staff_repository.holds(conn, app_id, account_id, role)
            if not held:
                raise StaffRequired(extra={"app_id": app_id, "role": role})
        user_id = await self.caps.seen(app_id, account_id)
        request = Request(
            method=method,
            path=path,
            query=query,
            headers={k: v for k, v in headers.items() if k in FORWARDED_REQUEST_HEADERS},
            body=body,
            user_id=user_id,
            received_at=dt.datetime.now(dt.UTC),
        )
        try:
            key = await self.runtime.ensure_loaded(version)
            response = await self.runtime.host.call(key, request, hung_up=hung_up)
        except CallerGone:  # left the app's queue without running: nobody is left to read the answer
            raise ClientClosedRequest() from None
        except SandboxError as exc:
            raise e.from_sandbox(exc, app_id) from None
        if len(response.body) > self.config.max_response_bytes:
            raise e.ResponseTooLarge(extra={"app_id": app_id, "limit": self.config.max_response_bytes})
        status = response.status if 200 <= response.status <= 599 else 502
        # JSON, CSV or bytes, nosniff, private caching: the SDK's rule, the simulator's too (docs/platform.md)
        return Answer(status, answer_headers(response.headers), response.body)
