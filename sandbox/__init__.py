"""yima's mini-app sandbox: OS-isolated worker processes, supervised by an asyncio host.

host = SandboxHost(SandboxSettings.production(), provider)
key = host.add_app("miniapps/library")
await host.start()
response = await host.call(key, Request(method="GET", path="/books/1"))
await host.close()
"""

from sandbox._queue import HungUp
from sandbox.capabilities import CallInfo, CapabilityProvider, InMemoryCapabilityProvider
from sandbox.errors import (
    AppBusy,
    AppUnavailable,
    CallerGone,
    CpuExceeded,
    DeadlineExceeded,
    HostClosed,
    LayerMissing,
    MiniAppError,
    ProtocolViolation,
    ResponseTooLarge,
    SandboxError,
    UnknownApp,
    WorkerCrashed,
)
from sandbox.host import SandboxHost, restart_delay
from sandbox.limits import LAYERS
from sandbox.settings import SandboxSettings, effective_limits

__all__ = [
    "LAYERS",
    "AppBusy",
    "AppUnavailable",
    "CallInfo",
    "CallerGone",
    "CapabilityProvider",
    "CpuExceeded",
    "DeadlineExceeded",
    "HostClosed",
    "HungUp",
    "InMemoryCapabilityProvider",
    "LayerMissing",
    "MiniAppError",
    "ProtocolViolation",
    "ResponseTooLarge",
    "SandboxError",
    "SandboxHost",
    "SandboxSettings",
    "UnknownApp",
    "WorkerCrashed",
    "effective_limits",
    "restart_delay",
]
