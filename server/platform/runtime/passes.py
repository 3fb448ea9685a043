"""App passes: `credentials.issue_pass` and `credentials.revoke_pass`, a `YP1.` pass given to `credentials.verify`,
and whether an app honours a pass a terminal scanned (the scan sink asks through `PlatformCapabilities`). A revoked
pass also goes on the revocation list terminals sync (`app_pass` entries, the pass number only), so that an offline
gate refuses it too.

A pass is in the `YP1.` format of yima_sdk.passes, signed with the platform keys of purpose `miniapp-pass`, and
names no one: the holder stays in `miniapp_passes`. Another app's pass verifies only when that app lists this one
under [share_passes_with] and the holder granted the share in the catalog (consent scope `pass_share:<this app>`
of the issuing app); else `credential.other_app` or `credential.share_not_consented`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

from yima_sdk import contract as c
from yima_sdk.codes import CredentialError
from yima_sdk.passes import PassClaims, open_pass, seal_pass, verify_pass_signature

from sandbox.capabilities import CallInfo
from server.core import Core
from server.platform.ports import HealthCodes
from server.platform.residents import repository
from server.platform.runtime.service import Runtime

PASS_PURPOSE = "miniapp-pass"  # noqa: S105 - a key purpose, not a secret
SHARE_SCOPE = "pass_share:"
"""The consent scope, in the issuing app, to honour its passes in app `<id>`: `pass_share:<id>`."""


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


class AppPasses:
    def __init__(
        self,
        core: Core,
        runtime: Runtime,
        *,
        codes: HealthCodes,
        known: Callable[[str, int], Awaitable[str | None]],
        clock: Callable[[], float],
    ) -> None:
        self.core = core
        self.runtime = runtime
        self._codes = codes
        self._known = known
        """The resident's id in an app if they use it (PlatformCapabilities.known), else None."""
        self._clock = clock

    async def issue(self, call: CallInfo, op: c.CredentialsIssuePass) -> c.AppPass:
        now = self._clock()
        c.check_pass(op, now)
        holder = op.user_id or call.user_id
        key = await self.core.keys.active(PASS_PURPOSE)
        async with self.core.db.transaction() as conn:
            number = await repository.insert_pass(
                conn, call.app_id, op.kind, holder, _utc(op.valid_until), _utc(now)
            )
        # The holder stays in miniapp_passes: a pass is shown to terminals and gate keepers, and names no one.
        claims = PassClaims(
            p=number, a=call.app_id, k=op.kind, s=None, d=op.data, exp=op.valid_until, kid=key.kid
        )
        payload = seal_pass(claims, key.private_key)
        return c.AppPass(id=f"pass_{number}", kind=op.kind, payload=payload, valid_until=op.valid_until)

    async def check(self, call: CallInfo, payload: str) -> c.Verification:
        """`credentials.verify` of a `YP1.` pass."""
        try:
            claims, signed, signature = open_pass(payload)
            key = await self.core.keys.find(PASS_PURPOSE, claims.kid)
            if key is None:
                raise CredentialError("credential.unknown_key")
            verify_pass_signature(key.public_key, signed, signature)
        except CredentialError as exc:
            return c.Verification(valid=False, reason=exc.code)
        reason, holder, account_id = await self.honour(call.app_id, claims, self._clock())
        if reason is not None:
            return c.Verification(valid=False, reason=reason)
        user_id = holder if claims.a == call.app_id else None
        if account_id is not None and claims.a != call.app_id:
            user_id = await self._known(call.app_id, account_id)  # named only if they use this app too
        return c.Verification(
            valid=True,
            kind="app_pass",
            user_id=user_id,
            pass_id=f"pass_{claims.p}",
            data=claims.d,
            issuer_app=claims.a,
        )

    async def honour(
        self, reader_app: str, claims: PassClaims, now: float | None = None
    ) -> tuple[str | None, str | None, int | None]:
        """Whether `reader_app` honours a pass whose signature was checked: (refusal reason or None, the holder's
        id in the issuing app, the holder's account). Another app's pass only when that app shares its passes
        with `reader_app` and the holder consented; never a revoked pass."""
        shared = claims.a != reader_app
        if shared and reader_app not in self._shares_of(claims.a):
            return "credential.other_app", None, None
        if now is not None and claims.exp < now:  # (a terminal's scan checked the expiry with its tolerance)
            return "credential.expired", None, None
        async with self.core.db.connection() as conn:
            revoked, holder = await repository.pass_holder(conn, claims.a, claims.p)
            if revoked:
                return "credential.revoked", None, None
            account_id = None if holder is None else await repository.account_of(conn, claims.a, holder)
            if shared:
                # the holder, known to the issuing app by its own id, consented to this share in the catalog
                consented = account_id is not None and (
                    await repository.consent(conn, account_id, claims.a, SHARE_SCOPE + reader_app) is True
                )
                if not consented:
                    return "credential.share_not_consented", None, None
        return None, holder, account_id

    def _shares_of(self, app_id: str) -> set[str]:
        """The apps a live version of `app_id` shares its passes with (a suspended app's passes stay valid:
        suspension stops its code, not what it issued)."""
        live = self.runtime.apps.get(app_id)
        return {shared for v in (live.versions() if live else []) for shared in v.pass_shares}

    async def held(self, app_id: str, account_id: int, payload: str) -> PassClaims:
        """A pass the shell may show for `app_id`'s page (yima.showPass): signed with the platform's pass keys,
        issued by `app_id` itself (a shared pass is shown by its own app), neither expired nor revoked, and held
        by `account_id`. Else CredentialError: `credential.malformed`, `credential.unknown_key`,
        `credential.bad_signature`, `credential.expired` (the pass is bad), or `credential.other_app`,
        `credential.revoked`, `credential.not_holder` (not one of this app's passes for this resident)."""
        claims, signed, signature = open_pass(payload)
        key = await self.core.keys.find(PASS_PURPOSE, claims.kid)
        if key is None:
            raise CredentialError("credential.unknown_key")
        verify_pass_signature(key.public_key, signed, signature)
        if claims.a != app_id:
            raise CredentialError("credential.other_app")
        if claims.exp < self._clock():
            raise CredentialError("credential.expired")
        async with self.core.db.connection() as conn:
            revoked, holder = await repository.pass_holder(conn, app_id, claims.p)
            if revoked:
                raise CredentialError("credential.revoked")
            if holder is None or await repository.account_of(conn, app_id, holder) != account_id:
                raise CredentialError("credential.not_holder")
        return claims

    async def revoke(self, call: CallInfo, pass_id: str) -> bool:
        number = c.id_number(pass_id)
        async with self.core.db.transaction() as conn:
            valid_until = await repository.revoke_pass(conn, call.app_id, number, _utc(self._clock()))
            if valid_until is None:
                return False
            # with the revocation, in one transaction: terminals refuse the pass offline after their next sync
            await self._codes.revoke_pass(conn, number=number, valid_until=valid_until)
        return True
