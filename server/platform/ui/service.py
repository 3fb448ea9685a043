"""Mini-app page bundles (`ui/` in the archive): served at `/miniapps/{app_id}/ui/` under a policy that lets the
page reach nothing but its own files, `/static/yima.js` and its own app's gateway (yima_sdk.ui_bundle's
`page_headers`, which `yima-sdk dev` serves with too).

A bundle is small (yima_sdk.ui_bundle caps it at 2 MiB), so each live version's files are read from its stored
archive once per process and answered from memory; versions that are no longer live are dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import PurePosixPath

from yima_sdk.ui_bundle import UI_FOLDER, UI_MEDIA_TYPES

from server.core import Core
from server.errors import NotFound
from server.platform import errors as e
from server.platform.apps import archive
from server.platform.runtime.service import LiveVersion, Runtime


class UiNotFound(NotFound):
    code, title = "miniapp.ui_not_found", "This mini-app has no such page file"


@dataclass(frozen=True)
class UiFile:
    body: bytes
    media_type: str
    etag: str


class UiBundles:
    def __init__(self, core: Core, runtime: Runtime) -> None:
        self.core = core
        self.runtime = runtime
        self._bundles: dict[str, dict[str, UiFile]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def version(self, app_id: str, version: str | None) -> LiveVersion:
        """`version` if it is live (stable or phased), else the stable one (the phased one before any stable)."""
        chosen = self.runtime.resolve(app_id, None)  # not found, suspended or unavailable: its errors
        if version is None:
            return chosen
        wanted = self.runtime.live_version(app_id, version)
        if wanted is None:
            raise e.AppUnavailable(extra={"app_id": app_id})
        return wanted

    async def page(self, version: LiveVersion) -> str | None:
        """The address of the version's page, or None when its archive has no ui/ (the catalog tells the shell)."""
        if "index.html" not in await self._bundle(version):
            return None
        return f"/miniapps/{version.app_id}/versions/{version.version}/ui/"

    async def file(self, app_id: str, version: str | None, path: str) -> UiFile:
        bundle = await self._bundle(self.version(app_id, version))
        name = path.lstrip("/")
        if name == "" or name.endswith("/"):
            name += "index.html"
        found = bundle.get(name)
        if found is None:
            raise UiNotFound(extra={"app_id": app_id, "path": name[:200]})
        return found

    async def _bundle(self, version: LiveVersion) -> dict[str, UiFile]:
        bundle = self._bundles.get(version.key)
        if bundle is not None:
            return bundle
        async with self._locks.setdefault(version.key, asyncio.Lock()):
            bundle = self._bundles.get(version.key)
            if bundle is None:
                bundle = await self._load(version)
                live = {v.key for a in self.runtime.apps.values() for v in a.versions()}
                for stale in [k for k in self._bundles if k not in live]:
                    del self._bundles[stale]
                    self._locks.pop(stale, None)
                self._bundles[version.key] = bundle
        return bundle

    async def _load(self, version: LiveVersion) -> dict[str, UiFile]:
        _, report = await archive.stored(self.core.db, version.app_id, version.version)
        bundle = {}
        for name, content in report.files.items():
            if name.startswith(UI_FOLDER):
                media = UI_MEDIA_TYPES.get(PurePosixPath(name).suffix.lower())
                if media is not None:  # checked at upload; a type allowed then and not now is not served
                    etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
                    bundle[name[len(UI_FOLDER) :]] = UiFile(content, media, etag)
        return bundle
