"""What is live: the released apps as the gateway sees them (cached per process, refreshed on every
transition), and the SandboxHost that runs their versions (unpack, load, unload).

Each server process keeps its own view and its own host. A transition refreshes the view of the process that
made it at once and tells the others over the cache's pub/sub channel; a periodic refresh is the backstop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from yima_sdk._staff import StaffTable
from yima_sdk.manifest import ScanPreload

from sandbox import SandboxHost
from server.cache import follow
from server.core import Core
from server.platform import errors as e
from server.platform.apps import archive, repository
from server.platform.runtime.ids import bucket

log = logging.getLogger("yima.platform")

CHANNEL = "platform:changed"


LOAD_RETRY_S = 60.0
"""How long refreshes leave a version that failed to start before they try it again."""


@dataclass(frozen=True)
class LiveVersion:
    app_id: str
    version: str
    manifest: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.app_id}@{self.version}"

    @property
    def scopes(self) -> dict[str, str]:
        return dict(self.manifest.get("scopes") or {})

    @property
    def scenes(self) -> frozenset[str]:
        return frozenset(self.manifest.get("scenes") or ())

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset(self.manifest.get("capabilities") or ())

    @functools.cached_property
    def staff(self) -> StaffTable:
        """[staff]: roles, unit kinds, staff-only routes (an empty table for manifests from before it)."""
        return msgspec.convert(self.manifest.get("staff") or {}, StaffTable)

    @functools.cached_property
    def scan_preloads(self) -> dict[str, dict[str, ScanPreload]]:
        """[scan_preload]: scene kind -> the finds run before its scan events reach the app (none before it)."""
        return msgspec.convert(self.manifest.get("scan_preload") or {}, dict[str, dict[str, ScanPreload]])

    @property
    def pass_shares(self) -> dict[str, str]:
        """[share_passes_with]: apps that may honour this app's passes -> the purpose shown to the resident."""
        return dict(self.manifest.get("share_passes_with") or {})

    @property
    def consent_scopes(self) -> dict[str, str]:
        """Everything a resident decides for this version in the catalog, with its purpose: the data scopes,
        and `pass_share:<app>` for each app it shares its passes with."""
        return self.scopes | {f"pass_share:{app}": purpose for app, purpose in self.pass_shares.items()}


@dataclass(frozen=True)
class LiveApp:
    app_id: str
    name: str
    suspended: bool
    stable: LiveVersion | None
    phased: LiveVersion | None
    percent: int
    whitelist: frozenset[int]
    calls_per_minute: int
    resident_calls_per_minute: int

    def version_for(self, account_id: int | None) -> LiveVersion | None:
        """The phased version for the whitelist and the first `percent` buckets; the stable one otherwise (and for
        a holder who is none of our residents, `None`: a partner county's code at a terminal)."""
        if account_id is None:
            return self.stable if self.stable is not None else self.phased
        if self.phased is not None and (
            account_id in self.whitelist or bucket(self.app_id, account_id) < self.percent
        ):
            return self.phased
        return self.stable

    def versions(self) -> list[LiveVersion]:
        return [v for v in (self.stable, self.phased) if v is not None]


def _live(row: Any) -> LiveApp:
    def version(name: str | None, manifest: Any) -> LiveVersion | None:
        return None if name is None or manifest is None else LiveVersion(row["app_id"], name, manifest)

    return LiveApp(
        app_id=row["app_id"],
        name=row["name"],
        suspended=row["status"] == "suspended",
        stable=version(row["stable_version"], row["stable_manifest"]),
        phased=version(row["phased_version"], row["phased_manifest"]),
        percent=row["phased_percent"],
        whitelist=frozenset(row["phased_whitelist"] or ()),
        calls_per_minute=row["calls_per_minute"],
        resident_calls_per_minute=row["resident_calls_per_minute"],
    )


@dataclass
class Runtime:
    core: Core
    host: SandboxHost
    apps_dir: Path
    refresh_s: float = 5.0
    apps: dict[str, LiveApp] = field(default_factory=dict)
    scenes: dict[tuple[str, str], str] = field(default_factory=dict)
    _loading: dict[str, asyncio.Lock] = field(default_factory=dict)
    _loaded: set[str] = field(default_factory=set)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _refresh_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _loader: asyncio.Task[None] | None = None
    _retry_at: dict[str, float] = field(default_factory=dict)
    _load_again: bool = False

    # ---- the view ---------------------------------------------------------------------------------------

    def live_version(self, app_id: str, version: str) -> LiveVersion | None:
        """This version of the app when it is live (stable or phased), else None."""
        live = self.apps.get(app_id)
        return next((v for v in live.versions() if v.version == version), None) if live else None

    def resolve(self, app_id: str, account_id: int | None) -> LiveVersion:
        """The version this resident gets, or the reason there is none (suspended, unavailable)."""
        live = self.apps.get(app_id)
        if live is None:
            raise e.AppNotFound()
        if live.suspended:
            raise e.AppSuspended(extra={"app_id": app_id})
        chosen = live.version_for(account_id)
        if chosen is None:
            raise e.AppUnavailable(extra={"app_id": app_id})
        return chosen

    async def refresh(self, *, load: bool = True) -> None:
        """Read the view (live apps, scene bindings) and unload what is no longer live; then, unless told not to,
        start the workers of every live version."""
        async with self._refresh_lock:
            async with self.core.db.connection() as conn:
                rows = await repository.live_apps(conn)
                bindings = await repository.scene_bindings(conn)
            self.apps = {row["app_id"]: _live(row) for row in rows}
            self.scenes = {(b["kind"], b["scene"]): b["app_id"] for b in bindings}
            wanted = {v.key for a in self.apps.values() if not a.suspended for v in a.versions()}
            for key in sorted(self._loaded - wanted):
                await self.unload(key)
        if load:
            await self._load_live()

    async def _load_live(self) -> None:
        now = asyncio.get_running_loop().time()
        for live in list(self.apps.values()):
            if not live.suspended:
                for v in live.versions():
                    if now < self._retry_at.get(v.key, 0.0):
                        continue
                    starting = self._loading.get(v.key)
                    if starting is not None and starting.locked():
                        # Being started right now (by another pass or a call): waiting for it and then trying
                        # again at once would double the start-up of a version whose workers never start.
                        continue
                    try:
                        await self.ensure_loaded(v)
                    except Exception as exc:
                        # One broken mini-app must never stop the server (or its start-up): its calls will
                        # answer unavailable (each call still tries a start of its own), and refreshes try again
                        # only after a pause, so a version whose workers never start does not hold a starting
                        # worker on every node every few seconds.
                        self._retry_at[v.key] = asyncio.get_running_loop().time() + LOAD_RETRY_S
                        log.warning("mini-app failed to load", extra={"app": v.key, "error": repr(exc)})
                    else:
                        self._retry_at.pop(v.key, None)

    def _load_in_background(self) -> None:
        """Start live versions' workers without holding up the caller; one loading pass at a time, and one more
        after it when asked again meanwhile (the view may have changed under the running pass)."""
        if self._loader is not None and not self._loader.done():
            self._load_again = True
            return

        async def load() -> None:
            self._load_again = True
            while self._load_again:
                self._load_again = False
                await self._load_live()

        self._tasks = [t for t in self._tasks if not t.done()]
        self._loader = asyncio.create_task(load(), name="platform-load")
        self._tasks.append(self._loader)

    async def changed(self) -> None:
        """This process made a transition: update the view, tell the other processes, then start workers.

        The view comes first and the workers last because starting a version's workers takes a while (up to
        seconds on a loaded host), and neither this process's answers nor the other processes' news should wait
        for it: a call or scan that arrives first loads its version itself.
        """
        await self.refresh(load=False)
        await self.core.cache.publish(CHANNEL, b"changed")
        await self._load_live()

    def start_listening(self) -> None:
        self._tasks.append(asyncio.create_task(self._listen(), name="platform-listener"))
        self._tasks.append(asyncio.create_task(self._poll(), name="platform-refresh"))

    async def _listen(self) -> None:
        async def on_message(_message: bytes) -> None:
            # The view at once, so that the next message is never queued behind a version's start-up.
            await self.refresh(load=False)
            self._load_in_background()

        await follow(self.core.cache, CHANNEL, on_message)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("platform refresh failed", exc_info=True)

    # ---- the host ---------------------------------------------------------------------------------------

    async def ensure_loaded(self, version: LiveVersion) -> str:
        """Unpack and start the version's workers unless they run already; returns the host key."""
        key = version.key
        if key in self._loaded:
            return key
        lock = self._loading.setdefault(key, asyncio.Lock())
        async with lock:
            if key in self._loaded:
                return key
            digest, report = await archive.stored(self.core.db, version.app_id, version.version)
            folder = self.apps_dir / version.app_id / f"{version.version}-{digest[7:19]}"
            await asyncio.to_thread(archive.unpack, report.files, folder)
            try:
                await self.host.load(folder)
            except ValueError:
                pass  # already registered on this host (a concurrent refresh won the race)
            self._loaded.add(key)
            log.info("mini-app loaded", extra={"app": key})
            return key

    async def unload(self, key: str) -> None:
        """Stop a version's workers at once (suspend, revert, a version no longer live)."""
        self._loaded.discard(key)
        await self.host.unload(key)
        log.info("mini-app unloaded", extra={"app": key})

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.host.close()
