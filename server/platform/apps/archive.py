"""Checking an uploaded mini-app archive (PLATFORM.md format) and unpacking an approved one for the sandbox.

The archive is untrusted input: names are checked before anything is read (no absolute paths, no `..`, no
symlinks), compiled code (bytecode, `__pycache__`, native extensions) is refused because a reviewer cannot
read it, sizes are counted while inflating (the sizes a zip declares can lie), and Python files are compiled,
never executed, to report syntax errors early. Every check lands in the report the developer sees.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import shutil
import stat
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from yima_sdk.errors import ManifestError
from yima_sdk.manifest import MANIFEST_FILE, Manifest, parse_manifest
from yima_sdk.ui_bundle import ui_problems

from server.db import Database
from server.platform import errors as e
from server.platform.apps import repository

MAX_PACKED = 5 * 1024 * 1024
MAX_UNPACKED = 20 * 1024 * 1024
MAX_FILES = 500
MAX_RATIO = 200  # a text file rarely compresses better than this; a zip bomb always does


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class ArchiveReport:
    digest: str
    checks: list[Check] = field(default_factory=list)
    manifest: Manifest | None = None
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _bad_name(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if "\\" in name or "\x00" in name:
        return f"{name!r}: backslashes and NUL are not allowed in names"
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/"):
        return f"{name!r}: absolute path"
    if any(part in ("..", "") for part in path.parts) or ".." in name.split("/"):
        return f"{name!r}: path traversal"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return f"{name!r}: symbolic links are not allowed"
    return None


_COMPILED_SUFFIXES = (".pyc", ".pyo", ".so", ".pyd")


def _compiled(name: str) -> bool:
    """Bytecode or a native extension: what a reviewer cannot read, and what Python would run in place of the
    reviewed source (a `__pycache__/*.pyc` with an unchecked hash is loaded without looking at the .py)."""
    path = PurePosixPath(name)
    return "__pycache__" in path.parts or path.suffix.lower() in _COMPILED_SUFFIXES


def check_archive(data: bytes, app_id: str) -> ArchiveReport:
    """Run every automated check; the report says which passed. Never raises on bad input."""
    report = ArchiveReport(digest_of(data))
    if not report.add("size", len(data) <= MAX_PACKED, f"{len(data)} bytes packed (limit {MAX_PACKED})"):
        return report
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        report.add("zip", False, f"not a zip archive: {exc}")
        return report
    report.add("zip", True, f"{len(infos)} entries")
    bad = [problem for info in infos if (problem := _bad_name(info)) is not None]
    if not report.add("paths", not bad, "; ".join(bad[:5]) or "all paths are relative and inside the app"):
        return report
    compiled = [info.filename for info in infos if _compiled(info.filename)]
    if not report.add(
        "no_bytecode",
        not compiled,
        f"compiled code is not reviewable, ship sources only: {', '.join(compiled[:5])}"
        if compiled
        else "sources only",
    ):
        return report
    files = [i for i in infos if not i.is_dir()]
    if not report.add("file_count", len(files) <= MAX_FILES, f"{len(files)} files (limit {MAX_FILES})"):
        return report
    if not _inflate(archive, files, report):
        return report
    broken = ui_problems({name: len(content) for name, content in report.files.items()})
    for rule in broken:  # named by the same codes `yima-sdk pack` raises (yima_sdk.ui_bundle)
        report.add(rule.code, False, rule.detail)
    if broken:
        return report
    text = report.files.get(MANIFEST_FILE)
    if text is None:
        report.add("manifest", False, f"{MANIFEST_FILE} must be at the root of the archive")
        return report
    try:
        manifest = parse_manifest(text.decode("utf-8"), source=MANIFEST_FILE)
    except (ManifestError, UnicodeDecodeError) as exc:
        report.add("manifest", False, str(exc))
        return report
    if not report.add(
        "manifest",
        manifest.id == app_id,
        f"id {manifest.id!r}" + ("" if manifest.id == app_id else f" != {app_id!r}"),
    ):
        return report
    report.manifest = manifest
    module = manifest.entry.split(":", 1)[0].replace(".", "/")
    has_entry = f"{module}.py" in report.files or f"{module}/__init__.py" in report.files
    report.add(
        "entry", has_entry, f"{manifest.entry}" + ("" if has_entry else f": no {module}.py in the archive")
    )
    errors = []
    for name, content in sorted(report.files.items()):
        if name.endswith(".py"):
            try:
                compile(content, name, "exec", dont_inherit=True)
            except (SyntaxError, ValueError) as exc:
                errors.append(f"{name}: {exc}")
    report.add("python_syntax", not errors, "; ".join(errors[:5]) or "every module compiles")
    return report


def _inflate(archive: zipfile.ZipFile, files: list[zipfile.ZipInfo], report: ArchiveReport) -> bool:
    total = 0
    for info in files:
        if info.file_size > MAX_RATIO * max(info.compress_size, 1) and info.file_size > 1024 * 1024:
            report.add(
                "unpacked_size", False, f"{info.filename}: compression ratio over {MAX_RATIO} (zip bomb)"
            )
            return False
        try:
            with archive.open(info) as member:
                content = member.read(MAX_UNPACKED - total + 1)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError) as exc:
            report.add("unpacked_size", False, f"{info.filename}: cannot be read: {exc}")
            return False
        total += len(content)
        if total > MAX_UNPACKED:
            report.add("unpacked_size", False, f"more than {MAX_UNPACKED} bytes unpacked (zip bomb?)")
            return False
        report.files[info.filename] = content
    report.add("unpacked_size", True, f"{total} bytes unpacked (limit {MAX_UNPACKED})")
    return True


def unpack(files: dict[str, bytes], folder: Path) -> None:
    """Write checked files under `folder` (read-only for the sandbox's unprivileged uid: 0644 files, 0755 dirs)."""
    if folder.exists():
        return
    folder.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    # A folder of its own for each unpacking, not one per pid: two runtimes of one process (tests) or two containers
    # whose servers have the same pid over one apps_dir unpack the same version at once, and one's cleanup removed
    # the files the other was writing (its load failed; or an incomplete folder took the version's place).
    tmp = Path(tempfile.mkdtemp(prefix=f"{folder.name}.tmp", dir=folder.parent))
    try:
        os.chmod(tmp, 0o755)  # noqa: S103 - the sandbox uid must read the app
        for name, content in files.items():
            target = tmp / name
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            target.write_bytes(content)
            os.chmod(target, 0o644)
        for sub in tmp.rglob("*"):
            if sub.is_dir():
                os.chmod(sub, 0o755)  # noqa: S103
        os.replace(tmp, folder)
    except OSError:  # a full disk, or another unpacking of the same version put its folder in place first
        shutil.rmtree(tmp, ignore_errors=True)
        if not folder.is_dir():
            raise


_UNPACKING = re.compile(r".+\.tmp[a-z0-9_]+")
"""The temporary folder of an unpacking, `<version>-<digest>.tmp<random>` (or `.tmp<pid>`, as unpacking once named
it): a version's own folder ends in its digest."""

STALE_UNPACKING_S = 3600.0


def remove_stale_unpackings(apps_dir: Path, *, older_than_s: float = STALE_UNPACKING_S) -> list[Path]:
    """Remove the temporary folders that unpackings killed midway (the process stopped, the machine rebooted) left
    in `apps_dir`, once older than `older_than_s`: one that young may be another process's unpacking in progress
    over a shared apps_dir. Returns what it removed."""
    cutoff = time.time() - older_than_s
    removed = []
    for tmp in apps_dir.glob("*/*.tmp*"):
        try:
            if _UNPACKING.fullmatch(tmp.name) and tmp.is_dir() and tmp.stat().st_mtime < cutoff:
                shutil.rmtree(tmp, ignore_errors=True)
                removed.append(tmp)
        except OSError:  # gone meanwhile: another process at its start-up removed it first
            continue
    return removed


async def stored(db: Database, app_id: str, version: str) -> tuple[str, ArchiveReport]:
    """A version's stored archive (its digest, and its files checked again as at upload): the one way the runtime
    (to unpack and run it) and the pages (to serve its ui/) read it."""
    async with db.connection() as conn:
        found = await repository.archive(conn, app_id, version)
    if found is None:
        raise e.VersionNotFound()
    digest, data = found
    return digest, await asyncio.to_thread(check_archive, data, app_id)
