"""Operator settings of the sandbox: which layers are required, and the ceilings on what manifests may ask."""

from __future__ import annotations

from typing import Annotated

import msgspec
from yima_sdk._isolation import UID_BASE, UID_COUNT
from yima_sdk.manifest import Limits

from sandbox.limits import LAYERS

__all__ = ["ALL_LAYERS", "SandboxSettings", "effective_limits"]

ALL_LAYERS: frozenset[str] = frozenset(LAYERS)

Positive = Annotated[int, msgspec.Meta(ge=1)]


class SandboxSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Frozen so one settings value can be shared by every pool; built by the server's load_settings()."""

    applied_layers: frozenset[str] = ALL_LAYERS
    """Layers every worker is asked to apply (tests narrow this to prove one layer alone holds)."""
    required_layers: frozenset[str] = ALL_LAYERS
    """Layers that must be reported in force, or the app is refused (production: all of them)."""
    max_memory_mb: Positive = 512
    max_cpu_ms: Positive = 10_000
    max_timeout_ms: Positive = 10_000
    max_workers: Positive = 8
    queue_limit: Annotated[int, msgspec.Meta(ge=0)] = 2048
    """Calls that may wait for a free worker of one app version; more are answered `sandbox.busy` at once. A bound
    on memory, not the admission rule: callers queue, first come first served, for up to `queue_wait_ms`."""
    queue_wait_ms: Positive = 15_000
    """How long a call may wait for a free worker of its app version; past it, `sandbox.busy` (503 with a
    Retry-After). A burst (500 residents booking at once) is queued and answered, not shed."""
    idle_cpu_ms: Positive = 50
    """CPU a worker may use between calls (the tail of its last one); a worker over it works after the call
    (threads left spinning) and is recycled, so neither its next caller nor a neighbour pays for it."""
    watchdog_interval_ms: Positive = 250
    """How often the host checks the CPU of idle workers (it also checks each one before handing it a call)."""
    recycle_after_calls: Positive = 10_000
    """A worker is replaced after this many calls, whatever state the app left in it."""
    max_frame_bytes: Positive = 4 * 1024 * 1024
    """Largest bridge frame either way (requests, responses, capability traffic)."""
    max_inflight_capabilities: Positive = 32
    """Capability requests one call may have in flight; more are refused with `quota.exceeded`."""
    max_app_inflight_capabilities: Positive = 64
    """Capability requests all workers of one app version may have in flight together (same refusal)."""
    capability_concurrency: Positive = 4
    """Capability requests the provider serves at once, all apps together; the others wait their turn. The
    provider's database work is bounded by it, so core routes keep the rest of the connection pool."""
    log_records_per_call: Positive = 50
    log_records_per_minute: Positive = 1200
    """`ctx.log` records one app version may write per minute (all workers); more are dropped and counted."""
    max_log_record_bytes: Positive = 4096
    """A bigger `ctx.log` record keeps its event (cut to 200 characters) and level, not its fields."""
    worker_uid_base: Annotated[int, msgspec.Meta(ge=1000, le=2**31 - 2**20)] = UID_BASE
    """First uid (and gid) of the range apps run under: each app gets its own, so RLIMIT_NPROC and every
    same-uid permission (prlimit, /proc) separate apps from each other. Ids in this range own no files."""
    worker_uid_count: Annotated[int, msgspec.Meta(ge=1, le=2**20)] = UID_COUNT
    """Size of that range; an app's uid is derived from its id, so every server process agrees on it."""
    open_files: Positive = 64
    processes: Positive = 512
    """RLIMIT_NPROC: threads of all workers of one app (their shared uid); fork is refused by seccomp anyway."""
    start_timeout_s: float = 15.0
    restart_backoff_ms: Positive = 100
    restart_backoff_max_ms: Positive = 5_000
    python: str = ""
    """Interpreter for workers; empty means the host's own (sys.executable)."""

    @classmethod
    def production(cls) -> SandboxSettings:
        return cls()

    @classmethod
    def development(cls) -> SandboxSettings:
        """A laptop: ask for every layer, require none; what is missing is reported, not hidden."""
        return cls(required_layers=frozenset())


def effective_limits(asked: Limits, settings: SandboxSettings) -> Limits:
    """The manifest's limits, each capped by the operator's ceiling."""
    return Limits(
        memory_mb=min(asked.memory_mb, settings.max_memory_mb),
        cpu_ms=min(asked.cpu_ms, settings.max_cpu_ms),
        timeout_ms=min(asked.timeout_ms, settings.max_timeout_ms),
        workers=min(asked.workers, settings.max_workers),
    )
