"""The platform's services, built once at start-up: runtime view and sandbox host, registry, residents' side,
capabilities, gateway. Controllers reach them through `platform: PlatformDep`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeAlias

import asyncpg
from litestar.di import NamedDependency

from sandbox import SandboxHost
from server.core import Core
from server.platform.app_ids.service import AppIds
from server.platform.apps import archive
from server.platform.apps.service import Registry
from server.platform.config import PlatformSettings
from server.platform.device_login.service import DeviceLogin
from server.platform.gateway.service import Gateway
from server.platform.gateway.sessions import AppSessions
from server.platform.jobs.service import JobRunner
from server.platform.ports import Accounts, HealthCodes, Payments
from server.platform.residents.service import Residents
from server.platform.runtime.capabilities import PlatformCapabilities
from server.platform.runtime.service import Runtime
from server.platform.staff.service import Staff
from server.platform.storage.service import AppStorage
from server.platform.ui.service import UiBundles

log = logging.getLogger("yima.platform")


@dataclass
class Platform:
    core: Core
    config: PlatformSettings
    runtime: Runtime
    registry: Registry
    app_ids: AppIds
    device_login: DeviceLogin
    residents: Residents
    storage: AppStorage
    caps: PlatformCapabilities
    gateway: Gateway
    jobs: JobRunner
    app_sessions: AppSessions
    ui: UiBundles
    staff: Staff

    @classmethod
    async def start(
        cls,
        core: Core,
        config: PlatformSettings,
        *,
        user_id_key: bytes,
        accounts: Accounts,
        codes: HealthCodes,
        payments: Payments,
    ) -> Platform:
        config.apps_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        for stale in await asyncio.to_thread(archive.remove_stale_unpackings, config.apps_dir):
            log.info("removed an unpacking left unfinished", extra={"folder": str(stale)})
        storage = AppStorage(core.db)
        host = SandboxHost(config.sandbox)
        runtime = Runtime(core, host, config.apps_dir, refresh_s=config.refresh_s)
        caps = PlatformCapabilities(
            core, runtime, storage, user_id_key=user_id_key, accounts=accounts, codes=codes, payments=payments
        )
        caps.jobs.max_pending = config.jobs_max_pending
        caps.db.commit_deadline_s = config.db_commit_deadline_s
        host.provider = caps
        await caps.consents.start()
        await host.start()
        registry = Registry()
        platform = cls(
            core=core,
            config=config,
            runtime=runtime,
            registry=registry,
            app_ids=AppIds(),
            device_login=DeviceLogin(
                core.db,
                core.rate_limits,
                registry,
                ttl_s=core.settings.developer_login_ttl_s,
                interval_s=core.settings.developer_login_interval_s,
                verification_uri=f"{core.settings.base_url}/v1/developer/device/confirm",
            ),
            residents=Residents(runtime, payments),
            storage=storage,
            caps=caps,
            gateway=Gateway(core, runtime, caps, config),
            jobs=JobRunner(
                core.db,
                runtime,
                poll_s=config.jobs_poll_s,
                lease_s=config.jobs_lease_s,
                retry_base_s=config.jobs_retry_base_s,
            ),
            app_sessions=AppSessions(core, caps),
            ui=UiBundles(core, runtime),
            staff=Staff(runtime),
        )
        await runtime.refresh()
        runtime.start_listening()
        platform.jobs.start()
        return platform

    async def transition(self, change: Callable[[asyncpg.Connection], Awaitable[None]]) -> None:
        """Run a release transition in its own transaction, then make it visible: residents see it when the
        operator gets the answer (this process at once, the others over pub/sub)."""
        async with self.core.db.transaction() as conn:
            await change(conn)
        await self.runtime.changed()

    async def close(self) -> None:
        await self.jobs.close()
        await self.runtime.close()
        await self.caps.consents.close()


PlatformDep: TypeAlias = NamedDependency[Platform]
"""How a controller asks for the platform's services."""
