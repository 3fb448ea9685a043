"""HTTP routes: the resident's Ankang code and health status, the trust list, revocations, authority and operator
administration of partner keys, health status and revocation."""

from __future__ import annotations

import logging
from typing import Annotated, Any, TypeAlias

from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import CacheControlHeader, State
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter
from yima_sdk.trust import RevocationDelta

from server.auth import Principal, Role, allow
from server.auth.guards import ANY_ACCOUNT, PUBLIC, TERMINAL
from server.credentials import errors, schemas
from server.credentials.rendering import qr_version, render_png, render_svg
from server.credentials.revocation import FIRST_KINDS
from server.credentials.service import Credentials
from server.deps import Caller, Db
from server.errors import BadRequest, PayloadTooLarge, raises
from server.wire import b64url, b64url_decode, whole

CredentialsDep: TypeAlias = NamedDependency[Credentials]
log = logging.getLogger("yima.credentials")
_KIND = "[a-z][a-z0-9_]{0,39}"
"""A revocation kind's name, as the list's entries spell it (yima_sdk.trust.RevocationEntryWire)."""
_NO_STORE = {"Cache-Control": "no-store"}


class AnkangCodeController(Controller):
    path = "/v1/me"
    tags = ["codes"]

    @get(
        "/codes/ankang",
        opt=allow(ANY_ACCOUNT) | raises(errors.RealNameRequired),
        operation_id="getAnkangCode",
        cache_control=CacheControlHeader(no_store=True),
    )
    async def ankang_code(
        self, request: Request[Principal, Any, Any], state: State
    ) -> schemas.AnkangCodeResponse:
        """The caller's current dynamic Ankang code. Needs a verified real name (403 identity.required)."""
        # The hottest resident route (phones refresh every minute): the caller and the service come from the
        # request and the app state rather than from dependencies, which cost a task group per request.
        credentials: Credentials = state.credentials
        code = await credentials.ankang.issue(request.user.account_id)
        body = schemas.AnkangCodeResponse(
            payload=code.payload,
            color=code.colour,
            expires_at=code.expires_at_dt,
            refresh_after=code.refresh_after_dt,
            key_id=code.key_id,
            qr_version=qr_version(code.payload),
        )
        return body

    @get(
        "/codes/ankang.svg",
        opt=allow(ANY_ACCOUNT) | raises(errors.RealNameRequired),
        operation_id="getAnkangCodeSvg",
        media_type="image/svg+xml",
    )
    async def ankang_svg(self, principal: Caller, credentials: CredentialsDep) -> Response[bytes]:
        """The current Ankang code as an SVG QR image (error correction M)."""
        code = await credentials.ankang.issue(principal.account_id)
        return Response(render_svg(code.payload), media_type="image/svg+xml", headers=_NO_STORE)

    @get(
        "/codes/ankang.png",
        opt=allow(ANY_ACCOUNT) | raises(errors.RealNameRequired),
        operation_id="getAnkangCodePng",
        media_type="image/png",
    )
    async def ankang_png(self, principal: Caller, credentials: CredentialsDep) -> Response[bytes]:
        """The current Ankang code as a PNG QR image (error correction M)."""
        code = await credentials.ankang.issue(principal.account_id)
        return Response(render_png(code.payload), media_type="image/png", headers=_NO_STORE)

    @post("/codes/ankang/revoke", status_code=200, opt=allow(ANY_ACCOUNT), operation_id="revokeMyAnkangCodes")
    async def revoke_mine(
        self,
        principal: Caller,
        credentials: CredentialsDep,
        data: JSONBody[schemas.RevokeCodesRequest | None] = None,
    ) -> schemas.RevokeCodesResult:
        """Lost phone: every code shown so far stops working everywhere; the next code is a fresh one.
        Every field is optional, so no body at all means the defaults."""
        request = data or schemas.RevokeCodesRequest()
        published, version = await credentials.revocations.revoke_codes(
            actor=principal.actor, account_id=principal.account_id, reason=request.reason
        )
        return schemas.RevokeCodesResult(published, version)

    @get(
        "/health-status",
        opt=allow(ANY_ACCOUNT) | raises(errors.RealNameRequired),
        operation_id="getMyHealthStatus",
    )
    async def health_status(
        self, principal: Caller, credentials: CredentialsDep, db: Db
    ) -> schemas.MyHealthStatus:
        """The caller's current colour and its history, newest first."""
        colour, since, history = await credentials.health.my_status(db, principal.account_id)
        return schemas.MyHealthStatus(
            color=colour,  # type: ignore[arg-type]
            effective_at=since,
            history=[
                schemas.HealthHistoryEntry(r["colour"], r["reason"], r["effective_at"]) for r in history
            ],
        )


class TrustListController(Controller):
    path = "/v1/trust-list"
    tags = ["trust"]

    @get(
        "",
        opt=allow(PUBLIC),
        operation_id="getTrustList",
        media_type="application/json",
        # The body is the envelope's bytes as signed and cached; the document describes what they hold.
        responses={
            200: ResponseSpec(
                schemas.TrustListEnvelope,
                generate_examples=False,
                description="The signed trust list envelope",
            )
        },
    )
    async def trust_list(
        self, request: Request[Any, Any, Any], credentials: CredentialsDep
    ) -> Response[bytes]:
        """The root-signed trust list envelope (verify it with yima_sdk.trust.TrustList.verify). Honours
        If-None-Match with the ETag; X-Trust-List-Version names the version."""
        current = credentials.trust.current
        headers = {
            "ETag": current.etag,
            "X-Trust-List-Version": str(current.version),
            "Cache-Control": "no-cache",
        }
        if request.headers.get("if-none-match") == current.etag:
            return Response(b"", status_code=304, headers=headers)
        return Response(current.envelope, media_type="application/json", headers=headers)

    @get("/info", opt=allow(PUBLIC), operation_id="getTrustListInfo")
    async def info(self, credentials: CredentialsDep) -> schemas.TrustListInfo:
        """Version, ETag and the root public keys terminals pin at provisioning."""
        current = credentials.trust.current
        roots = await credentials.trust.root_public_keys()
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return schemas.TrustListInfo(
            version=current.version,
            etag=current.etag,
            root_key_id=current.root_key_id,
            root_public_keys={
                kid: b64url(k.public_bytes(Encoding.Raw, PublicFormat.Raw)) for kid, k in roots.items()
            },
        )


class PartnerKeyController(Controller):
    path = "/v1/admin/trust-list/partner-keys"
    tags = ["admin"]

    @post(
        "",
        status_code=201,
        opt=allow(Role.OPERATOR) | raises(errors.PartnerKeyInvalid, errors.PartnerKeyConflict),
        operation_id="addPartnerIssuerKey",
    )
    async def add(
        self, data: JSONBody[schemas.PartnerKeyRequest], principal: Caller, credentials: CredentialsDep
    ) -> schemas.PartnerKey:
        """Accept a partner county's issuer key (audited); a new trust list version is published."""
        try:
            public_key = b64url_decode(data.public_key)
        except ValueError:
            raise BadRequest("public_key must be unpadded base64url") from None
        trust_list = await credentials.trust.add_partner_key(
            actor=principal.actor,
            issuer=data.issuer,
            key_id=bytes.fromhex(data.key_id),
            public_key=public_key,
            credential_types=list(data.credential_types),
            not_before=data.not_before,
            not_after=data.not_after,
        )
        return schemas.PartnerKey(
            issuer=data.issuer,
            key_id=data.key_id,
            alg=data.alg,
            public_key=data.public_key,
            credential_types=sorted(set(data.credential_types)),
            not_before=data.not_before,
            not_after=data.not_after,
            trust_list_version=trust_list.version,
        )

    @delete(
        "/{issuer:int}/{key_id:str}",
        status_code=200,
        opt=allow(Role.OPERATOR) | raises(errors.PartnerKeyNotFound),
        operation_id="removePartnerIssuerKey",
    )
    async def remove(
        self, issuer: FromPath[int], key_id: FromPath[str], principal: Caller, credentials: CredentialsDep
    ) -> schemas.TrustListInfo:
        """Stop accepting a partner issuer key (audited); a new trust list version is published."""
        try:
            raw_kid = bytes.fromhex(key_id)
        except ValueError:
            raise BadRequest("key_id is 8 hex digits") from None
        current = await credentials.trust.remove_partner_key(
            actor=principal.actor, issuer=issuer, key_id=raw_kid
        )
        return schemas.TrustListInfo(current.version, current.etag, current.root_key_id, {})


class RevocationController(Controller):
    path = "/v1"
    tags = ["revocation"]

    @get(
        "/revocations",
        opt=allow(TERMINAL, Role.OPERATOR),
        operation_id="getRevocations",
        media_type="application/json",
        responses={
            200: ResponseSpec(
                RevocationDelta, generate_examples=False, description="The issuer's revocations after `since`"
            )
        },
    )
    async def revocations(
        self,
        principal: Caller,
        credentials: CredentialsDep,
        since: Annotated[int, QueryParameter(ge=0, le=2**62)] = 0,
        issuer: Annotated[int | None, QueryParameter(ge=100000, le=999999)] = None,
        kinds: Annotated[
            str | None,
            QueryParameter(
                pattern=whole(f"{_KIND}(,{_KIND}){{0,15}}"),
                description="The revocation kinds the terminal knows, comma-separated (e.g."
                " `subject,device_certificate,app_pass`); entries of other kinds are left out. Without it,"
                " only `subject` and `device_certificate`: a terminal SDK from before `app_pass` refuses a"
                " whole delta holding a kind it does not know (docs/scan.md, Revocation).",
            ),
        ] = None,
    ) -> Response[bytes]:
        """Revocations of one issuer (default: ours) after version `since`; since=0 is the complete list. Only
        the entries of the `kinds` the terminal names, which the `Yima-Revocation-Kinds` header repeats; the
        version is the list's all the same."""
        issuer = issuer or credentials.trust.issuer
        known = FIRST_KINDS if kinds is None else frozenset(kinds.split(","))
        body, withheld = await credentials.revocations.delta(issuer, since, known)
        if withheld:
            # kind names and counts only: a reference may stand for a resident
            log.warning(
                "revocations for %s left out %s (issuer %d): it does not name these kinds; a newer SDK would"
                " apply them",
                principal.actor,
                ", ".join(f"{kind} x{count}" for kind, count in sorted(withheld.items())),
                issuer,
            )
        return Response(
            body,
            media_type="application/json",
            headers={"Cache-Control": "no-cache", "Yima-Revocation-Kinds": ",".join(sorted(known))},
        )

    @post(
        "/admin/revocations",
        status_code=200,
        opt=allow(Role.OPERATOR) | raises(errors.AccountNotFound),
        operation_id="adminRevokeAnkangCodes",
    )
    async def admin_revoke(
        self, data: JSONBody[schemas.AdminRevokeCodesRequest], principal: Caller, credentials: CredentialsDep
    ) -> schemas.RevokeCodesResult:
        """Revoke a resident's live codes (audited)."""
        published, version = await credentials.revocations.revoke_codes(
            actor=principal.actor, account_id=data.account_id, reason=data.reason
        )
        return schemas.RevokeCodesResult(published, version)


class HealthAuthorityController(Controller):
    path = "/v1/authority/health-status"
    tags = ["authority"]

    @post(
        "",
        status_code=200,
        opt=allow(Role.HEALTH_AUTHORITY) | raises(errors.IdNumberInvalid),
        operation_id="setHealthStatus",
    )
    async def set_status(
        self, data: JSONBody[schemas.HealthStatusRequest], principal: Caller, credentials: CredentialsDep
    ) -> schemas.HealthStatusSet:
        """Set one resident's colour by ID number (audited); the next code refresh carries it."""
        when, known = await credentials.health.set_status(
            actor=principal.actor,
            id_number=data.id_number,
            colour=data.color,
            reason=data.reason,
            effective_at=data.effective_at,
        )
        return schemas.HealthStatusSet(data.color, when, known)

    @post(
        "/imports",
        status_code=200,
        opt=allow(Role.HEALTH_AUTHORITY) | raises(errors.ImportInvalid, PayloadTooLarge),
        operation_id="importHealthStatus",
    )
    async def import_file(
        self, request: Request[Any, Any, Any], principal: Caller, credentials: CredentialsDep
    ) -> schemas.HealthImportResult:
        """Bulk colours from a CSV body (`id_number,color[,reason[,effective_at]]` per line). Good rows apply, bad
        rows are reported with their line; importing the same file again applies nothing twice."""
        outcome = await credentials.health.import_file(actor=principal.actor, content=await request.body())
        return schemas.HealthImportResult(
            import_id=outcome.import_id,
            applied=outcome.applied,
            rejected=len(outcome.errors),
            errors=[schemas.ImportRowError(line, reason) for line, reason in outcome.errors],
            repeated=outcome.repeated,
        )
