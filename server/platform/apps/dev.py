"""`yima dev --app PATH`: local mini-app folders run as released apps on the real platform, reloaded on change.

Each load goes the way a published app goes (id registration -> pack -> upload with its checks -> review ->
release to everyone -> scene bindings), in one transaction under the demo operator's account, so the gateway, the sandbox, consent and
storage are the production ones. Every distinct content gets its own version, `<manifest version>+dev.<digest>`:
the registry keeps versions immutable, and going back to an earlier content releases that version again.
Each scene kind the manifest subscribes to is bound to the scene named after the app id (`clinic/<app id>`), so a
terminal enrolled at that scene delivers its scans to the app.

Demo data: a local app with a job handler named `seed` (`@app.job("seed")`, the `jobs` capability) gets that
job scheduled once per county day (key `yima-dev-seed:<day>`), due at once, run in the sandbox by the platform's
job runner like any job: the app fills its own collections through its own code, no back door. `yima dev` also
runs each folder of the checkout's `miniapps/` this way (the first-party apps; YIMA_DEV_FIRST_PARTY=0: not).

A watcher polls the folders' files (paths, sizes, modification times) and reloads a folder once a change has
settled. A failed load (bad manifest, failed check, an app that does not start) is printed and the version
that ran before keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import asyncpg
import msgspec
from yima_sdk import contract as c
from yima_sdk._inspect import job_handlers
from yima_sdk.cron import COUNTY_TIME
from yima_sdk.errors import YimaError
from yima_sdk.pack import Package, archive_files, pack

from sandbox.errors import SandboxError
from server.errors import AppError, Unprocessable
from server.platform.ports import Accounts
from server.platform.runtime.service import LiveVersion
from server.platform.service import Platform

log = logging.getLogger("yima.platform.dev")

REVIEW_REASON = "yima dev --app: a local folder"
Signature = tuple[tuple[str, int, int], ...]


class DevAppRefused(Unprocessable):
    code, title = "dev.app_refused", "The local mini-app folder was refused"


def signature(folder: Path) -> Signature:
    """What a reload reacts to: each packed file's path, size and modification time."""
    out = []
    for name in archive_files(folder):
        try:
            stat = (folder / name).stat()
        except FileNotFoundError:  # removed between listing and stat: the next poll sees the settled state
            continue
        out.append((name, stat.st_size, stat.st_mtime_ns))
    return tuple(out)


def dev_package(folder: Path) -> Package:
    """The folder packed with its dev version stamped in: the same content, the same version."""
    plain = pack(folder)
    return pack(folder, version=f"{plain.manifest.version}+dev.{plain.digest[7:19]}")


class DevApps:
    """Loads `folders` at start and reloads each when its files change, until close()."""

    def __init__(
        self,
        platform: Platform,
        accounts: Accounts,
        owner_phone: str,
        folders: tuple[Path, ...],
        *,
        poll_s: float = 0.5,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.platform = platform
        self.accounts = accounts
        self.owner_phone = owner_phone
        self.folders = folders
        self.poll_s = poll_s
        self.say = say or _print
        self._seen: dict[Path, Signature] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for folder in self.folders:
            self._seen[folder] = await asyncio.to_thread(signature, folder)
            await self.load(folder)
        self._task = asyncio.create_task(self._watch(), name="dev-apps-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def load(self, folder: Path) -> bool:
        """Pack, upload, approve, release and bind one folder; print what happened. False if it was refused."""
        try:
            package = await asyncio.to_thread(dev_package, folder)
        except (YimaError, OSError) as exc:
            self.say(f"yima dev: {folder}: not loaded: {exc}")
            return False
        manifest = package.manifest
        try:
            async with self.platform.core.db.transaction() as conn:
                owner = await self._upload(conn, package)
            # started before it is released: an app that does not start leaves the running version in place
            await self.platform.runtime.ensure_loaded(
                LiveVersion(manifest.id, manifest.version, msgspec.to_builtins(manifest))
            )
            await self.platform.transition(lambda conn: self._release(conn, owner, package))
        except AppError as exc:
            self.say(f"yima dev: {folder}: not loaded: {exc.code}: {exc.detail or exc.title}")
            return False
        except SandboxError as exc:
            self.say(f"yima dev: {manifest.id} {manifest.version} does not start: {exc.message}")
            return False
        bound = ", ".join(f"{kind}/{manifest.id}" for kind in sorted(manifest.scenes)) or "none"
        self.say(f"yima dev: {manifest.id} {manifest.version} is live from {folder} (scenes: {bound})")
        if "jobs" in manifest.capabilities and "seed" in await asyncio.to_thread(
            job_handlers, folder, manifest.entry
        ):
            day = dt.datetime.now(COUNTY_TIME).date().isoformat()
            op = c.JobsSchedule(name="seed", delay_s=0, key=f"yima-dev-seed:{day}")
            job = await self.platform.caps.jobs.handle(manifest.id, op)
            self.say(f"yima dev: {manifest.id}: demo data by its seed job ({job})")
        return True

    async def _upload(self, conn: asyncpg.Connection, package: Package) -> int:
        """Upload and approve (a version seen before stays approved); the owner's account id."""
        registry, manifest = self.platform.registry, package.manifest
        owner = await self.accounts.account_id_for_phone(conn, self.owner_phone, create=True)
        assert owner is not None  # created if absent
        # the folder's id is registered to the demo operator at once, as an operator's approval would
        await self.platform.app_ids.register_for_dev(conn, owner, manifest.id, REVIEW_REASON)
        upload = await registry.upload(conn, owner, manifest.id, package.data)
        if upload.status == "checks_failed":
            failed = "; ".join(f"{c['name']}: {c['detail']}" for c in upload.checks if not c["ok"])
            raise DevAppRefused(f"the platform's checks failed: {failed}")
        if upload.status == "in_review":
            await registry.review(conn, owner, manifest.id, manifest.version, True, REVIEW_REASON)
        return owner

    async def _release(self, conn: asyncpg.Connection, owner: int, package: Package) -> None:
        """Release to everyone (unless it is the stable version already) and bind the manifest's scene kinds."""
        registry, manifest = self.platform.registry, package.manifest
        app, _ = await registry.state(conn, manifest.id)
        if app["stable_version"] != manifest.version:
            await registry.release(conn, owner, manifest.id, manifest.version, [], 100)
        for kind in sorted(manifest.scenes):
            await registry.bind_scene(conn, owner, kind, manifest.id, manifest.id, frozenset(manifest.scenes))

    async def _watch(self) -> None:
        pending: dict[Path, Signature] = {}
        while True:
            await asyncio.sleep(self.poll_s)
            for folder in self.folders:
                try:
                    now = await asyncio.to_thread(signature, folder)
                except (YimaError, OSError) as exc:
                    log.warning("dev app folder unreadable", extra={"folder": str(folder), "error": str(exc)})
                    continue
                if now == self._seen.get(folder):
                    pending.pop(folder, None)
                elif pending.get(folder) != now:
                    pending[folder] = now  # changed: reload once it has stayed the same for one poll
                else:
                    del pending[folder]
                    self._seen[folder] = now
                    try:
                        await self.load(folder)
                    except Exception:  # the watcher outlives any one bad reload
                        log.exception("dev app reload failed", extra={"folder": str(folder)})


def _print(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
