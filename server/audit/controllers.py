"""GET /v1/audit/checkpoints: the signed heads of the audit chain, for partners and the health authority to keep."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import Parameter

from server.audit.checkpoints import Checkpoint, published
from server.auth import allow
from server.auth.guards import PUBLIC


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
