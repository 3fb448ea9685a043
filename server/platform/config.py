"""The platform's own settings: the sandbox, where app versions are unpacked, gateway and scan limits."""

from __future__ import annotations

from pathlib import Path

import msgspec

from sandbox import SandboxSettings
from server.settings import Mode, Settings

COMMIT_DEADLINE_S = 2.0
"""How long a `ctx.db` commit may keep retrying (serialization failures, deadlocks, lock waits) before it fails."""


class PlatformSettings(msgspec.Struct, frozen=True, kw_only=True):
    sandbox: SandboxSettings
    """Production requires every isolation layer; development and tests report missing layers instead."""
    apps_dir: Path
    """Where released versions are unpacked; every directory on the path must be traversable by the sandbox uid."""
    max_request_bytes: int = 256 * 1024
    """Largest request body the gateway forwards to a mini-app (413 miniapp.request_too_large)."""
    max_response_bytes: int = 1024 * 1024
    """Largest answer the gateway passes back (502 miniapp.response_too_large)."""
    scan_deadline_ms: int = 300
    """How long a scan answer waits for the bound app's display lines before marking them missing."""
    refresh_s: float = 5.0
    """Backstop refresh of the released-apps view (transitions are pushed over pub/sub at once)."""
    jobs_poll_s: float = 1.0
    """How often each process looks for due jobs (server/platform/jobs/service.py)."""
    jobs_lease_s: float = 300.0
    """How long a claimed job is held before another process may run it (its runner died)."""
    jobs_retry_base_s: float = 30.0
    """Pause before a failed job runs again; doubled after each failure, at most an hour."""
    jobs_max_pending: int = 1000
    """One-shot jobs an app may have pending (`quota.exceeded` beyond)."""
    db_commit_deadline_s: float = COMMIT_DEADLINE_S
    """How long a `ctx.db` commit may wait for locks and retry before `capability.failed`, nothing written."""

    @classmethod
    def for_server(cls, settings: Settings) -> PlatformSettings:
        production = settings.mode is Mode.PRODUCTION
        sandbox = SandboxSettings.production() if production else SandboxSettings.development()
        # capabilities get a third of the database pool at most; core routes keep the rest
        share = max(1, settings.db_pool_max // 3)
        return cls(
            sandbox=msgspec.structs.replace(
                sandbox, capability_concurrency=share, queue_wait_ms=max(1, settings.platform_queue_wait_ms)
            ),
            apps_dir=Path(settings.data_dir).resolve() / "miniapps",
            max_request_bytes=settings.platform_max_request_bytes,
            max_response_bytes=settings.platform_max_response_bytes,
            scan_deadline_ms=settings.platform_scan_deadline_ms,
        )
