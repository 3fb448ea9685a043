"""Audit routes: the public signed checkpoints, and the operator's search, chain verification and checkpoint
on demand."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, get, post
from litestar.params import Parameter

from server import audit
from server.audit import repository, schemas
from server.audit.checkpoints import Checkpoint, from_row, published
from server.audit.service import verify_chain
from server.audit.signing import publish_checkpoint
from server.auth import Role, allow
from server.auth.guards import PUBLIC
from server.deps import Caller, Db
from server.keys.service import ROOT_PURPOSE


class AuditCheckpointController(Controller):
    path = "/v1/audit/checkpoints"
    tags = ["audit"]

    @get("", opt=allow(PUBLIC), operation_id="listAuditCheckpoints")
    async def list_checkpoints(
        self,
        request: Request[Any, Any, Any],
        after: Annotated[
            int, Parameter(ge=0, le=2**62, description="only checkpoints covering more records")
        ] = 0,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    ) -> list[Checkpoint]:
        """Append-only: checkpoints in order of size; fetch with `after` = the largest size already held.

        Public: a checkpoint holds no personal data, only the chain's length and head MAC, signed by the trust
        root key (verify with the trust list's root public key)."""
        return await published(request.app.state.core.db, after, limit)


def _record(row: asyncpg.Record) -> schemas.AuditRecord:
    return schemas.AuditRecord(
        row["seq"], row["at"], row["actor"], row["action"], row["target"], dict(row["details"] or {})
    )


Text = Annotated[str | None, Parameter(min_length=1, max_length=200)]


class AuditAdminController(Controller):
    path = "/v1/admin/audit"
    tags = ["audit"]

    @get("", opt=allow(Role.OPERATOR), operation_id="searchAuditLog")
    async def search(
        self,
        db: Db,
        action: Text = None,
        actor: Text = None,
        target: Text = None,
        q: Annotated[
            str | None,
            Parameter(min_length=1, max_length=200, description="anywhere in action, actor or target"),
        ] = None,
        before: Annotated[
            int | None, Parameter(ge=1, le=2**62, description="records older than this seq")
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    ) -> list[schemas.AuditRecord]:
        """Audit records, newest first: exact action, actor or target, or `q` as a substring; page with
        `before` = the last seq seen."""
        rows = await repository.search(
            db, action=action, actor=actor, target=target, text=q, before=before, limit=limit
        )
        return [_record(r) for r in rows]

    @post("/checkpoints", status_code=201, opt=allow(Role.OPERATOR), operation_id="writeAuditCheckpoint")
    async def checkpoint(self, request: Request[Any, Any, Any], principal: Caller) -> Checkpoint:
        """Sign the chain's head now, as `yima audit checkpoint` does (the hourly schedule goes on): stored,
        appended to this node's checkpoint file and published at `GET /v1/audit/checkpoints`. The request is
        audited first, so the checkpoint answered covers the record of its own request."""
        core = request.app.state.core
        async with core.db.transaction() as conn:
            seq = await audit.append(
                conn,
                actor=f"account:{principal.account_id}",
                action="audit.checkpoint_requested",
                target="audit_log",
            )
        checkpoint = await publish_checkpoint(core)
        if checkpoint is None:  # another worker's schedule signed a head holding our record first: that one
            checkpoint = (await published(core.db, seq - 1, 1))[0]
        return checkpoint

    @post("/verify", status_code=200, opt=allow(Role.OPERATOR), operation_id="verifyAuditLog")
    async def verify(self, request: Request[Any, Any, Any]) -> schemas.AuditVerification:
        """Walk the whole hash chain (MACs under the master key) and hold it against the signed checkpoints the
        server stored, as `yima audit verify` does: intact, or the first broken record named."""
        core = request.app.state.core
        roots = {k.kid: k.public_key for k in await core.keys.keys(ROOT_PURPOSE)}
        async with core.db.connection() as conn:
            held = [from_row(r) for r in await repository.checkpoints_after(conn, 0, 2**31)]
            forged = [c for c in held if not c.verify(roots)]
            if forged:
                return schemas.AuditVerification(
                    False,
                    0,
                    len(held),
                    schemas.AuditBreakOut(
                        forged[0].size, "forged_checkpoint", "a stored checkpoint's signature is not valid"
                    ),
                )
            checked, broken = await verify_chain(conn, core.derived_keys.audit_chain, held)
            row = await repository.get(conn, broken.seq) if broken is not None else None
        if broken is None:
            return schemas.AuditVerification(True, checked, len(held))
        return schemas.AuditVerification(
            False,
            checked,
            len(held),
            schemas.AuditBreakOut(broken.seq, broken.problem, broken.detail, _record(row) if row else None),
        )
