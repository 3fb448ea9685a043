"""Signing the audit chain's head with the trust root key: the schedule, the CLI and the operator's route."""

from __future__ import annotations

from server.audit.checkpoints import Checkpoint, publish
from server.core import Core
from server.keys.service import ROOT_PURPOSE


async def publish_checkpoint(core: Core) -> Checkpoint | None:
    """Sign and export the head now (when it moved); every worker may call this, only one signs each head."""
    signer = await core.keys.active(ROOT_PURPOSE)
    return await publish(core.db, signer, core.settings.resolved_audit_checkpoint_file)
