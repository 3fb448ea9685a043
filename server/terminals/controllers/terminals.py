"""HTTP routes: terminal administration, scene policies, enrolment, the terminal token and the signed time."""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Any, TypeAlias

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter
from yima_sdk.documents import documents_etag
from yima_sdk.lists import ListChanges

from server.auth import Role, allow
from server.auth.guards import PUBLIC, TERMINAL
from server.deps import Caller, Db
from server.errors import BadRequest, TooManyRequests, raises
from server.net import client_address
from server.terminals import errors, schemas
from server.terminals.policies import CHANNEL, KINDS, ScenePolicy
from server.terminals.registry import TerminalInfo
from server.terminals.service import Terminals
from server.wire import b64url

TerminalsDep: TypeAlias = NamedDependency[Terminals]


def _out(t: TerminalInfo, token_endpoint: str) -> schemas.TerminalOut:
    return schemas.TerminalOut(
        t.id,
        t.name,
        t.kind,
        t.scene,
        t.enabled,
        t.created_at,
        token_endpoint,
        t.clock_offset_ms,
        t.clock_checked_at,
        t.unit,
        t.last_signed_in_at,
    )


def _policy_out(p: ScenePolicy) -> schemas.ScenePolicyOut:
    return schemas.ScenePolicyOut(
        p.kind, p.scene, sorted(p.allowed_colours), p.show_name, p.replay, p.accept_ride_codes
    )


class TerminalAdminController(Controller):
    path = "/v1/admin"
    tags = ["admin"]

    @post(
        "/terminals",
        status_code=201,
        opt=allow(Role.OPERATOR) | raises(errors.TerminalKeyInvalid),
        operation_id="registerTerminal",
    )
    async def register(
        self, data: JSONBody[schemas.TerminalRequest], principal: Caller, terminals: TerminalsDep, db: Db
    ) -> schemas.TerminalOut:
        """Register a terminal with its Ed25519 public key (audited)."""
        info = await terminals.registry.register(
            db,
            actor=principal.actor,
            name=data.name,
            kind=data.kind,
            scene=data.scene,
            public_key=data.public_key,
            unit=data.unit,
        )
        return _out(info, terminals.registry.token_endpoint)

    @post(
        "/terminal-enrolments",
        status_code=201,
        opt=allow(Role.OPERATOR),
        operation_id="createTerminalEnrolment",
    )
    async def create_enrolment(
        self, data: JSONBody[schemas.EnrolmentRequest], principal: Caller, terminals: TerminalsDep, db: Db
    ) -> Response[schemas.EnrolmentOut]:
        """A one-time enrolment code for a terminal to be (name, kind, scene, staff unit): the terminal page registers its
        own key with it (`POST /v1/terminal/enrol`). Shown once; audited."""
        code, expires_at = await terminals.registry.create_enrolment(
            db,
            actor=principal.actor,
            name=data.name,
            kind=data.kind,
            scene=data.scene,
            valid_minutes=data.valid_minutes,
            unit=data.unit,
        )
        return Response(
            schemas.EnrolmentOut(code, expires_at, data.name, data.kind, data.scene, data.unit),
            status_code=201,
            headers={"Cache-Control": "no-store"},
        )

    @get("/terminals", opt=allow(Role.OPERATOR), operation_id="listTerminals")
    async def list_terminals(self, terminals: TerminalsDep, db: Db) -> list[schemas.TerminalOut]:
        """Every registered terminal."""
        return [_out(t, terminals.registry.token_endpoint) for t in await terminals.registry.list(db)]

    @post(
        "/terminals/{terminal_id:str}/disable",
        status_code=200,
        opt=allow(Role.OPERATOR) | raises(errors.TerminalNotFound),
        operation_id="disableTerminal",
    )
    async def disable(
        self, terminal_id: FromPath[str], principal: Caller, terminals: TerminalsDep
    ) -> schemas.TerminalOut:
        """Disable a terminal: its tokens stop working at once (audited)."""
        info = await terminals.registry.disable(actor=principal.actor, terminal_id=terminal_id)
        return _out(info, terminals.registry.token_endpoint)

    @post(
        "/terminals/{terminal_id:str}/enable",
        status_code=200,
        opt=allow(Role.OPERATOR) | raises(errors.TerminalNotFound),
        operation_id="enableTerminal",
    )
    async def enable(
        self, terminal_id: FromPath[str], principal: Caller, terminals: TerminalsDep, db: Db
    ) -> schemas.TerminalOut:
        """Enable a terminal again; it must fetch a new token (audited)."""
        info = await terminals.registry.enable(db, actor=principal.actor, terminal_id=terminal_id)
        return _out(info, terminals.registry.token_endpoint)

    @get("/scene-policies", opt=allow(Role.OPERATOR), operation_id="listScenePolicies")
    async def policies(self, terminals: TerminalsDep) -> list[schemas.ScenePolicyOut]:
        """Which colours pass where, whether names show, how replays are answered."""
        return [_policy_out(p) for p in terminals.scans.policies.all()]

    @put(
        "/scene-policies/{kind:str}",
        opt=allow(Role.OPERATOR) | raises(errors.PolicyInvalid),
        operation_id="setScenePolicy",
    )
    async def set_policy(
        self,
        kind: FromPath[str],
        data: JSONBody[schemas.ScenePolicyRequest],
        principal: Caller,
        terminals: TerminalsDep,
        scene: Annotated[str, QueryParameter(max_length=100)] = "",
    ) -> schemas.ScenePolicyOut:
        """Set the policy of a kind of scene (or of one named scene with ?scene=...); audited, applies at once."""
        if kind not in KINDS:
            raise errors.PolicyInvalid(f"kind must be one of {', '.join(KINDS)}")
        await terminals.update_policy(
            actor=principal.actor,
            kind=kind,
            scene=scene,
            allowed_colours=list(data.allowed_colours),
            show_name=data.show_name,
            replay=data.replay,
            accept_ride_codes=data.accept_ride_codes,
        )
        return _policy_out(terminals.scans.policies.for_scene(kind, scene))


class TerminalTokenController(Controller):
    path = "/v1/terminal"
    tags = ["terminal"]

    @post(
        "/token",
        status_code=200,
        opt=allow(PUBLIC)
        | raises(
            BadRequest,
            (BadRequest, "request.malformed"),
            (BadRequest, "request.unsupported_media"),
            errors.UnsupportedGrant,
            errors.InvalidClient,
            (errors.InvalidClient, "terminal.disabled"),
            errors.AssertionTime,
        ),
        operation_id="terminalToken",
    )
    async def token(
        self, request: Request[Any, Any, Any], terminals: TerminalsDep
    ) -> Response[schemas.TerminalToken]:
        """OAuth 2.0 client credentials with an RFC 7523 JWT client assertion (form-encoded): a short-lived
        terminal token. The assertion: iss = sub = terminal id, aud = this endpoint's URL, unique jti, exp <= 5 min."""
        body = await request.body()
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raise BadRequest(
                "Send application/x-www-form-urlencoded (RFC 6749)", code="request.unsupported_media"
            )
        try:
            pairs = urllib.parse.parse_qs(body.decode("ascii"), strict_parsing=True, max_num_fields=10)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("The form body is malformed", code="request.malformed") from None
        if any(len(v) != 1 for v in pairs.values()):
            raise BadRequest("Each form field may appear once")
        token, expires_in = await terminals.registry.issue_token({k: v[0] for k, v in pairs.items()})
        return Response(schemas.TerminalToken(token, expires_in), headers={"Cache-Control": "no-store"})

    @post(
        "/enrol",
        status_code=201,
        opt=allow(PUBLIC) | raises(errors.EnrolmentCodeInvalid, errors.TerminalKeyInvalid, TooManyRequests),
        operation_id="enrolTerminal",
    )
    async def enrol(
        self, request: Request[Any, Any, Any], data: JSONBody[schemas.EnrolRequest], terminals: TerminalsDep
    ) -> schemas.EnrolledTerminal:
        """Register this terminal's own Ed25519 public key with a one-time code from the console. The code is
        spent; the terminal then signs in at `token_endpoint` with client assertions. Rate-limited per address."""
        info = await terminals.registry.enrol(client_address(request), data.code, data.public_key)
        roots = await terminals.registry.root_public_keys()
        return schemas.EnrolledTerminal(
            _out(info, terminals.registry.token_endpoint),
            {kid: b64url(raw) for kid, raw in roots.items()},
            terminals.registry.pass_issuer,
        )

    @get(
        "/public-time",
        opt=allow(PUBLIC) | raises(TooManyRequests),
        operation_id="terminalPublicTime",
        media_type="application/json",
    )
    async def public_time(
        self,
        request: Request[Any, Any, Any],
        terminals: TerminalsDep,
        nonce: Annotated[str, QueryParameter(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
    ) -> Response[schemas.SignedTime]:
        """The same signed time as /time, without a token: for a terminal whose clock is too far off to sign in
        (its client assertion is refused `terminal.assertion_time`). Rate-limited per address."""
        body = await terminals.registry.public_time(client_address(request), nonce)
        return Response(_signed_time(body), headers={"Cache-Control": "no-store"})

    @get(
        "/documents",
        opt=allow(TERMINAL) | raises(errors.TerminalNotFound),
        operation_id="terminalDocuments",
        media_type="application/json",
        # The body is the envelopes' bytes as signed at publication; the document describes what they hold.
        responses={
            200: ResponseSpec(
                schemas.TerminalDocuments,
                generate_examples=False,
                description="The signed documents of the terminal's scene's app",
            )
        },
    )
    async def documents(
        self, request: Request[Any, Any, Any], principal: Caller, terminals: TerminalsDep
    ) -> Response[bytes]:
        """Every version of every document the app bound to this terminal's scene published for its terminals
        (`ctx.terminals.publish`; the bus app's fare tables), each signed by the trust-list root; the terminal
        checks them and applies the version in force (yima_sdk.terminal.Terminal.sync_documents). Honours
        If-None-Match with the ETag."""
        terminal = await terminals.registry.info(principal.subject)
        envelopes = await terminals.documents.envelopes(terminal.kind, terminal.scene)
        body = b'{"documents":[' + b",".join(envelopes) + b"]}"
        headers = {"ETag": documents_etag(body), "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Response(b"", status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    @get(
        "/lists",
        opt=allow(TERMINAL) | raises(errors.TerminalNotFound),
        operation_id="terminalLists",
        media_type="application/json",
    )
    async def lists(
        self,
        principal: Caller,
        terminals: TerminalsDep,
        after: Annotated[int, QueryParameter(ge=0, le=2**62)] = 0,
    ) -> Response[ListChanges]:
        """The changes, after change `after`, of the lists that the app bound to this terminal's scene holds for
        the terminal's staff unit (`ctx.terminals.hold`; a spot's tickets): entries with their holder tags (never
        a resident's id), tombstones of dropped ones, each list's salt (yima_sdk.lists). Ask again after `cursor`
        while `more`; `reset`: forget what you hold first. None for a terminal without a unit
        (yima_sdk.terminal.Terminal.sync_lists)."""
        terminal = await terminals.registry.info(principal.subject)
        answer = await terminals.lists.changes(terminal.kind, terminal.scene, terminal.unit, after)
        return Response(answer, headers={"Cache-Control": "no-store"})

    @get("/time", opt=allow(TERMINAL), operation_id="terminalTime", media_type="application/json")
    async def server_time(
        self,
        principal: Caller,
        terminals: TerminalsDep,
        nonce: Annotated[str, QueryParameter(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
        terminal_time: Annotated[int | None, QueryParameter(ge=0, le=2**53)] = None,
    ) -> Response[schemas.SignedTime]:
        """The server's time (unix ms) signed by the trust-list root and bound to the terminal's fresh nonce, for
        its clock sync (yima_sdk.terminal.verify_server_time); `terminal_time`, the terminal's own clock, is kept
        for the operator's terminal list."""
        body = await terminals.registry.server_time(principal.subject, nonce, terminal_time)
        return Response(_signed_time(body), headers={"Cache-Control": "no-store"})


_signed_time_decoder = msgspec.json.Decoder(schemas.SignedTime)


def _signed_time(body: bytes) -> schemas.SignedTime:
    """The signed envelope as the documented Struct (the SDK builds the bytes; the route declares their shape)."""
    return _signed_time_decoder.decode(body)


__all__ = ["CHANNEL", "TerminalAdminController", "TerminalTokenController"]
