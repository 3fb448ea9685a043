"""Wire types of the audit log as the console reads it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from server.wire import Outbound


class AuditRecord(Outbound):
    seq: int
    at: dt.datetime
    actor: str
    """`account:<id>`, `seed`, `cli`..."""
    action: str
    target: str
    details: dict[str, Any]


class AuditBreakOut(Outbound):
    seq: int
    """The first record where the chain breaks."""
    problem: str
    """`changed`, `missing`, `reordered`, `rewritten`, `truncated`, or `forged_checkpoint` (then `seq` is the
    size the forged checkpoint claims)."""
    detail: str = ""
    record: AuditRecord | None = None
    """That record as stored now (absent when it is missing)."""


class AuditVerification(Outbound):
    intact: bool
    checked: int
    """Records walked."""
    checkpoints: int
    """Signed checkpoints held against the chain (those stored by the server)."""
    broken: AuditBreakOut | None = None
