"""Registry rules: developer tokens, uploads (only under an id registered to the uploader's organisation) with
automated checks, the review queue, releases (whitelist, then
a percentage that only grows), reverting the phased group, rollback, suspension, scene bindings and quotas.

Every transition is audited in the same transaction; after it commits the runtime view is refreshed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
from yima_sdk.manifest import MANIFEST_FILE, MAX_RESIDENCE_SCOPES, Manifest, is_residence_scope

from server import audit
from server.errors import Conflict
from server.platform import errors as e
from server.platform.app_ids.service import check_publisher
from server.platform.apps import archive, repository

TOKEN_PREFIX = "ydt_"  # noqa: S105 - the public prefix of developer tokens
RECENT_RELEASES = 5


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class Upload:
    app_id: str
    version: str
    digest: str
    status: str
    checks: list[dict[str, Any]]
    created: bool


class Registry:
    def __init__(self, clock: Callable[[], dt.datetime] = _now) -> None:
        self.clock = clock

    # ---- developer tokens -----------------------------------------------------------------------------

    async def issue_token(
        self, conn: asyncpg.Connection, account_id: int, *, via: str | None = None
    ) -> tuple[int, str, dt.datetime]:
        """A new token for `account_id`; `via` names the device login that asked for it, if one did."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        at = self.clock()
        token_id = await repository.insert_token(conn, account_id, token_hash(token), at)
        await audit.append(
            conn,
            actor=f"account:{account_id}",
            action="developer.token_issued",
            target=f"developer_token:{token_id}",
            details={"via": via} if via else None,
        )
        return token_id, token, at

    async def revoke_token(self, conn: asyncpg.Connection, account_id: int, token_id: int) -> None:
        if not await repository.revoke_token(conn, token_id, account_id, self.clock()):
            raise e.TokenNotFound()
        await audit.append(
            conn,
            actor=f"account:{account_id}",
            action="developer.token_revoked",
            target=f"developer_token:{token_id}",
        )

    async def developer(self, conn: asyncpg.Connection, authorization: str) -> int:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token.startswith(TOKEN_PREFIX):
            raise e.DeveloperTokenInvalid()
        owner = await repository.token_owner(conn, token_hash(token))
        if owner is None:
            raise e.DeveloperTokenInvalid("This developer token is unknown or revoked")
        return owner

    # ---- uploads --------------------------------------------------------------------------------------

    async def upload(self, conn: asyncpg.Connection, developer_id: int, app_id: str, data: bytes) -> Upload:
        # before anything is read or stored: the id must be registered to the uploader's organisation
        await check_publisher(conn, developer_id, app_id)
        if len(data) > archive.MAX_PACKED:
            raise e.ArchiveTooLarge()
        report = archive.check_archive(data, app_id)
        manifest = report.manifest
        version = manifest.version if manifest is not None else _version_hint(report)
        at = self.clock()
        await repository.register_app(conn, app_id, developer_id, manifest.name if manifest else app_id, at)
        await repository.app_for_update(conn, app_id)  # uploads of one app take turns
        if manifest is not None:
            await _check_counties_of_the_app(conn, report, manifest)
        checks = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in report.checks]
        if version is None:
            # nothing to file it under: answer the report, store nothing
            return Upload(app_id, "", report.digest, "checks_failed", checks, created=False)
        existing = await repository.version(conn, app_id, version)
        if existing is not None:
            if existing["digest"] != report.digest:
                raise e.VersionExists(extra={"digest": existing["digest"]})
            return Upload(
                app_id, version, existing["digest"], existing["status"], existing["checks"], created=False
            )
        status = "in_review" if report.ok else "checks_failed"
        await repository.insert_version(
            conn,
            app_id=app_id,
            version=version,
            digest=report.digest,
            status=status,
            checks=checks,
            manifest=msgspec.to_builtins(manifest) if manifest is not None else {},
            archive=data,
            size_bytes=len(data),
            at=at,
        )
        await audit.append(
            conn,
            actor=f"account:{developer_id}",
            action="miniapp.version_uploaded",
            target=f"miniapp:{app_id}@{version}",
            details={"digest": report.digest, "status": status},
        )
        return Upload(app_id, version, report.digest, status, checks, created=True)

    # ---- review ---------------------------------------------------------------------------------------

    async def review(
        self, conn: asyncpg.Connection, operator: int, app_id: str, version: str, approve: bool, reason: str
    ) -> str:
        row = await repository.version_for_update(conn, app_id, version)
        if row is None:
            raise e.VersionNotFound()
        if row["status"] != "in_review":
            raise e.NotInReview(extra={"status": row["status"]})
        status = "approved" if approve else "rejected"
        await repository.set_review(conn, app_id, version, status, reason, operator, self.clock())
        await audit.append(
            conn,
            actor=f"account:{operator}",
            action=f"miniapp.version_{status}",
            target=f"miniapp:{app_id}@{version}",
            details={"reason": reason},
        )
        return status

    # ---- release --------------------------------------------------------------------------------------

    async def _app(self, conn: asyncpg.Connection, app_id: str) -> asyncpg.Record:
        row = await repository.app_for_update(conn, app_id)
        if row is None:
            raise e.AppNotFound()
        return row

    async def _audit(
        self, conn: asyncpg.Connection, operator: int, action: str, app_id: str, **details: Any
    ) -> None:
        await audit.append(
            conn,
            actor=f"account:{operator}",
            action=f"miniapp.{action}",
            target=f"miniapp:{app_id}",
            details=details,
        )

    async def release(
        self,
        conn: asyncpg.Connection,
        operator: int,
        app_id: str,
        version: str,
        whitelist: list[int],
        percent: int,
    ) -> None:
        """Start a phased release of an approved version: the whitelist first, then `percent` of residents.

        100 % at once is a full release: the version becomes the stable one."""
        app = await self._app(conn, app_id)
        row = await repository.version_for_update(conn, app_id, version)
        if row is None:
            raise e.VersionNotFound()
        if row["status"] != "approved":
            raise e.NotApproved(extra={"status": row["status"]})
        if version == app["stable_version"]:
            raise Conflict("This version is already released to everyone", code="release.already_released")
        await repository.set_release(
            conn,
            app_id,
            self.clock(),
            phased_version=version,
            phased_percent=0,
            phased_whitelist=sorted(set(whitelist)),
        )
        await self._audit(
            conn, operator, "release_started", app_id, version=version, whitelist=len(whitelist)
        )
        if percent:
            await self.widen(conn, operator, app_id, percent, [])

    async def widen(
        self,
        conn: asyncpg.Connection,
        operator: int,
        app_id: str,
        percent: int | None,
        add_whitelist: list[int],
    ) -> None:
        app = await self._app(conn, app_id)
        if app["phased_version"] is None:
            raise e.NothingPhased()
        at = self.clock()
        if percent is not None and percent < app["phased_percent"]:
            raise e.PercentageDecrease(extra={"current": app["phased_percent"], "asked": percent})
        whitelist = sorted(set(app["phased_whitelist"]) | set(add_whitelist))
        if percent == 100:
            await repository.set_release(
                conn,
                app_id,
                at,
                stable_version=app["phased_version"],
                phased_version=None,
                phased_percent=0,
                phased_whitelist=[],
            )
            await repository.mark_released(conn, app_id, app["phased_version"], at)
            await self._audit(conn, operator, "release_completed", app_id, version=app["phased_version"])
            return
        await repository.set_release(
            conn,
            app_id,
            at,
            phased_percent=app["phased_percent"] if percent is None else percent,
            phased_whitelist=whitelist,
        )
        await self._audit(
            conn,
            operator,
            "release_widened",
            app_id,
            version=app["phased_version"],
            percent=percent,
            whitelist=len(whitelist),
        )

    async def revert_phased(self, conn: asyncpg.Connection, operator: int, app_id: str) -> None:
        """Everyone back to the stable version at once (or to 'unavailable' when there was none)."""
        app = await self._app(conn, app_id)
        if app["phased_version"] is None:
            raise e.NothingPhased()
        await repository.set_release(
            conn, app_id, self.clock(), phased_version=None, phased_percent=0, phased_whitelist=[]
        )
        await self._audit(conn, operator, "release_reverted", app_id, version=app["phased_version"])

    async def rollback(self, conn: asyncpg.Connection, operator: int, app_id: str, version: str) -> None:
        """Make one of the recent fully released versions the stable one again, for everyone, at once."""
        app = await self._app(conn, app_id)
        recent = await repository.recent_released(conn, app_id, RECENT_RELEASES)
        if version not in recent or version == app["stable_version"]:
            raise e.NotRecent(extra={"recent": [v for v in recent if v != app["stable_version"]]})
        at = self.clock()
        await repository.set_release(
            conn,
            app_id,
            at,
            stable_version=version,
            phased_version=None,
            phased_percent=0,
            phased_whitelist=[],
        )
        await repository.mark_released(conn, app_id, version, at)
        await self._audit(
            conn, operator, "rolled_back", app_id, version=version, previous=app["stable_version"]
        )

    async def suspend(self, conn: asyncpg.Connection, operator: int, app_id: str, reason: str) -> None:
        await self._app(conn, app_id)
        await repository.set_release(conn, app_id, self.clock(), status="suspended", suspended_reason=reason)
        await self._audit(conn, operator, "suspended", app_id, reason=reason)

    async def resume(self, conn: asyncpg.Connection, operator: int, app_id: str) -> None:
        await self._app(conn, app_id)
        await repository.set_release(conn, app_id, self.clock(), status="active", suspended_reason=None)
        await self._audit(conn, operator, "resumed", app_id)

    async def set_quotas(
        self, conn: asyncpg.Connection, operator: int, app_id: str, quotas: dict[str, int]
    ) -> None:
        await self._app(conn, app_id)
        await repository.set_quotas(conn, app_id, self.clock(), **quotas)
        await self._audit(conn, operator, "quotas_set", app_id, **quotas)

    async def bind_scene(
        self,
        conn: asyncpg.Connection,
        operator: int,
        kind: str,
        scene: str,
        app_id: str,
        scenes: frozenset[str],
    ) -> None:
        await self._app(conn, app_id)
        if kind not in scenes:
            raise e.SceneKindNotSubscribed(extra={"kind": kind, "subscribed": sorted(scenes)})
        await repository.bind_scene(conn, kind, scene, app_id, self.clock())
        await self._audit(conn, operator, "scene_bound", app_id, kind=kind, scene=scene)

    async def state(
        self, conn: asyncpg.Connection, app_id: str
    ) -> tuple[asyncpg.Record, list[asyncpg.Record]]:
        app = await repository.app(conn, app_id)
        if app is None:
            raise e.AppNotFound()
        return app, await repository.versions(conn, app_id)


async def _check_counties_of_the_app(
    conn: asyncpg.Connection, report: archive.ArchiveReport, manifest: Manifest
) -> None:
    """Fail the manifest check when this version and the app's others that are or may become live together ask
    about more than `MAX_RESIDENCE_SCOPES` counties. The cap is the app's, not one manifest's: versions each
    asking about a different 8 would, released side by side (a phased release) or one after another, put 16
    yes-or-no questions about where a resident is registered to the same app."""
    ours = {name for name in manifest.scopes if is_residence_scope(name)}
    if not ours:
        return
    others = await repository.residence_scopes(conn, manifest.id, manifest.version)
    asked = ours | set(others)
    if len(asked) <= MAX_RESIDENCE_SCOPES:
        return
    elsewhere = sorted({v for scope, versions in others.items() if scope not in ours for v in versions})
    detail = (
        f"{MANIFEST_FILE}: field `scopes`: with the counties its other versions ({', '.join(elsewhere)}) ask about (in review,"
        f" approved or live), this app would ask about {len(asked)} registered_in: counties; at most"
        f" {MAX_RESIDENCE_SCOPES} per app, since any approved version may be released beside another"
    )
    report.checks = [
        archive.Check("manifest", False, detail) if c.name == "manifest" else c for c in report.checks
    ]


def _version_hint(report: archive.ArchiveReport) -> str | None:
    """Even a manifest that fails validation usually names its version; file the report under it."""
    import tomllib

    text = report.files.get("miniapp.toml")
    if text is None:
        return None
    try:
        raw = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    version = raw.get("version")
    if (
        isinstance(version, str)
        and 0 < len(version) <= 64
        and all(c.isalnum() or c in ".-+" for c in version)
    ):
        return version
    return None
