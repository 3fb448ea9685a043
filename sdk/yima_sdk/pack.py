"""`yima-sdk pack`: a reproducible zip of a mini-app folder and its digest (docs/sdk.md, PLATFORM contract).

Entries sorted by path, timestamps 1980-01-01, permissions 0o644, no directory entries, deflate at a fixed
level; `miniapp.toml` at the root. Left out: tests/ (not shipped), dist/ (where archives go), __pycache__,
*.pyc and every dotfile or dot-folder (.git, .venv, .env...). A symlink is refused rather than followed.
`digest` = "sha256:" + hex sha256 of the archive bytes: the same folder packs to the same bytes, so the same
digest, on any machine with the same zlib.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from yima_sdk.errors import PackError
from yima_sdk.manifest import MANIFEST_FILE, Manifest, load_manifest, parse_manifest
from yima_sdk.ui_bundle import ui_problems

__all__ = [
    "MAX_FILES",
    "MAX_PACKED",
    "MAX_UNPACKED",
    "Package",
    "archive_files",
    "pack",
    "read_package",
    "write_package",
]

MAX_PACKED = 5 * 1024 * 1024
MAX_UNPACKED = 20 * 1024 * 1024
MAX_FILES = 500
_EPOCH = (1980, 1, 1, 0, 0, 0)
_TOP_LEVEL_SKIPPED = frozenset({"tests", "dist"})


@dataclass(frozen=True)
class Package:
    """A packed app: the archive bytes, their digest and the manifest they carry."""

    manifest: Manifest
    data: bytes
    digest: str
    files: tuple[str, ...]

    @property
    def filename(self) -> str:
        return f"{self.manifest.id}-{self.manifest.version}.zip"


def archive_files(folder: Path) -> list[str]:
    """The relative paths (posix, sorted) that go into the archive; PackError on a symlink."""
    chosen: list[str] = []
    for path in folder.rglob("*"):
        parts = path.relative_to(folder).parts
        if any(part.startswith(".") or part == "__pycache__" for part in parts):
            continue
        if parts[0] in _TOP_LEVEL_SKIPPED and (len(parts) > 1 or path.is_dir()):
            continue
        if path.is_symlink():
            raise PackError(f"{'/'.join(parts)} is a symlink; archives hold regular files only")
        if path.is_dir() or path.suffix in (".pyc", ".pyo"):
            continue
        chosen.append("/".join(parts))
    return sorted(chosen)


def pack(folder: str | Path, *, version: str | None = None) -> Package:
    """Validate the manifest and build the archive in memory; PackError when a limit is broken.

    `version` stamps another version into the archive's miniapp.toml (the folder is not touched): `yima dev
    --app` gives every reload of a local folder its own version, e.g. `1.2.0+dev.3f2a...`."""
    root = Path(folder).resolve()
    manifest = load_manifest(root)
    stamped = None
    if version is not None:
        stamped = _stamp_version((root / MANIFEST_FILE).read_text(encoding="utf-8"), version)
        manifest = parse_manifest(stamped, source=str(root / MANIFEST_FILE))
    files = archive_files(root)
    if MANIFEST_FILE not in files:
        raise PackError(f"{MANIFEST_FILE} must be at the root of {root}")
    if len(files) > MAX_FILES:
        raise PackError(f"{len(files)} files; an archive holds at most {MAX_FILES}")
    sizes = {name: (root / name).stat().st_size for name in files}
    unpacked = sum(sizes.values())
    if unpacked > MAX_UNPACKED:
        raise PackError(f"{unpacked} bytes unpacked; the limit is {MAX_UNPACKED}")
    problems = ui_problems(sizes)
    if problems:  # the first rule broken is the code; the others follow it in the message
        first, *others = problems
        message = "; ".join([first.detail, *(f"{p.code}: {p.detail}" for p in others)])
        raise PackError(message, code=first.code)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in files:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the permission bits below mean the same everywhere
            info.external_attr = (0o100644 & 0xFFFF) << 16
            content = (
                stamped.encode()
                if stamped is not None and name == MANIFEST_FILE
                else (root / name).read_bytes()
            )
            archive.writestr(info, content, compresslevel=9)
    data = buffer.getvalue()
    if len(data) > MAX_PACKED:
        raise PackError(f"{len(data)} bytes packed; the limit is {MAX_PACKED}")
    return Package(manifest, data, "sha256:" + hashlib.sha256(data).hexdigest(), tuple(files))


_VERSION_LINE = re.compile(r"""^(version\s*=\s*)(["'])[^"'\n]*\2""", re.MULTILINE)


def _stamp_version(text: str, version: str) -> str:
    """miniapp.toml with its top-level `version = "..."` replaced (the first one: the tables after it have none)."""
    stamped, count = _VERSION_LINE.subn(lambda m: f'{m.group(1)}"{version}"', text, count=1)
    if count != 1:
        raise PackError(f'{MANIFEST_FILE} has no `version = "..."` line to stamp {version!r} into')
    return stamped


def write_package(folder: str | Path, output: str | Path | None = None) -> tuple[Package, Path]:
    """Pack `folder` and write the archive (default: `<folder>/dist/<id>-<version>.zip`)."""
    package = pack(folder)
    target = Path(output) if output is not None else Path(folder) / "dist" / package.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(package.data)
    return package, target


def read_package(path: str | Path) -> Package:
    """An archive packed earlier (e.g. by CI in another step): its manifest, bytes and digest."""
    data = Path(path).read_bytes()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = tuple(archive.namelist())
            text = archive.read(MANIFEST_FILE).decode("utf-8")
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError) as exc:
        raise PackError(f"{path} is not a mini-app archive: {exc}") from None
    manifest = parse_manifest(text, source=f"{path}!{MANIFEST_FILE}")
    return Package(manifest, data, "sha256:" + hashlib.sha256(data).hexdigest(), names)
