"""Archive checks: compiled code is refused before review; unpacking is safe to race, and what an unpacking killed
midway leaves is removed when a server starts."""

from __future__ import annotations

import concurrent.futures
import io
import os
import secrets
import time
import zipfile
from pathlib import Path

import pytest
from litestar import Litestar

from server.platform.apps.archive import check_archive, remove_stale_unpackings, unpack
from tests.conftest import serve

MANIFEST = 'id = "test.archive.app"\nname = "A"\nversion = "1.0.0"\n'


def _zip(extra: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("miniapp.toml", MANIFEST)
        archive.writestr("app.py", "from yima_sdk import App\n\napp = App()\n")
        for name, content in extra.items():
            archive.writestr(name, content)
    return buf.getvalue()


def test_sources_only_pass() -> None:
    report = check_archive(_zip({"lib/helper.py": b"X = 1\n"}), "test.archive.app")
    assert report.ok, report.checks
    assert next(c for c in report.checks if c.name == "no_bytecode").detail == "sources only"


@pytest.mark.parametrize(
    "name",
    ["__pycache__/app.cpython-311.pyc", "app.pyc", "lib/helper.pyo", "lib/__pycache__/x.txt", "fast.so"],
)
def test_shipped_bytecode_or_native_code_is_refused(name: str) -> None:
    report = check_archive(_zip({name: b"\x00compiled"}), "test.archive.app")
    assert not report.ok
    failed = next(c for c in report.checks if not c.ok)
    assert failed.name == "no_bytecode" and name in failed.detail
    assert report.files == {}  # nothing of it is kept for review or unpacking


def test_one_version_unpacked_twice_at_once_is_whole(tmp_path: Path) -> None:
    """Two server processes over one apps_dir hear of a release together and unpack the version at once; they may
    have the same pid (two containers; two runtimes of one test process). Both must end with the whole app in place:
    a failed unpacking fails that process's load of the version (retried only a minute later)."""
    files = {f"pkg{i}/module{j}.py": b"X = 1\n" * 100 for i in range(4) for j in range(10)}
    files["miniapp.toml"] = MANIFEST.encode()
    with concurrent.futures.ThreadPoolExecutor(2) as threads:
        for round_ in range(60):
            folder = tmp_path / "test.archive.app" / f"1.0.{round_}-digest"
            both = [threads.submit(unpack, files, folder) for _ in range(2)]
            for unpacking in both:
                unpacking.result()
            unpacked = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
            assert unpacked == set(files), f"round {round_}: {len(unpacked)} of {len(files)} files"
    assert len(list(folder.parent.iterdir())) == 60  # no unpacking left a temporary folder behind


def _unpacking_left(apps_dir: Path, app: str, name: str, age_s: float) -> Path:
    """A folder as an unpacking writes it, with one file, last written `age_s` ago."""
    folder = apps_dir / app / name
    (folder / "pkg").mkdir(parents=True)
    (folder / "pkg" / "main.py").write_text("X = 1\n")
    then = time.time() - age_s
    for path in (folder / "pkg" / "main.py", folder / "pkg", folder):
        os.utime(path, (then, then))
    return folder


def test_unpackings_killed_midway_are_removed_once_stale(tmp_path: Path) -> None:
    """A server killed while unpacking leaves its temporary folder: the next start removes it once an hour old, and
    leaves alone a younger one (another process's unpacking in progress over the same apps_dir), the versions'
    own folders however old, and anything else."""
    stale = _unpacking_left(tmp_path, "test.a.app", "1.0.0-0123456789ab.tmpk3_x9a2q", 2 * 3600)
    old_style = _unpacking_left(tmp_path, "test.a.app", "1.0.0-0123456789ab.tmp4242", 2 * 3600)
    young = _unpacking_left(tmp_path, "test.a.app", "1.0.1-0123456789ab.tmpzz81bq0c", 60)
    version = _unpacking_left(tmp_path, "test.a.app", "1.0.0-0123456789ab", 2 * 3600)
    other = _unpacking_left(tmp_path, "test.a.app", "notes.tmp-keep", 2 * 3600)
    assert sorted(remove_stale_unpackings(tmp_path)) == sorted([stale, old_style])
    assert not stale.exists() and not old_style.exists()
    assert young.is_dir() and (version / "pkg" / "main.py").is_file() and other.is_dir()


async def test_a_server_start_removes_stale_unpackings(app: Litestar, apps_dir: Path) -> None:
    """Through the server's own start-up: the stale folder is gone once it serves, the young one is kept."""
    owner = f"test.p{secrets.token_hex(4)}.left"
    stale = _unpacking_left(apps_dir, owner, "1.0.0-0123456789ab.tmpk3_x9a2q", 2 * 3600)
    young = _unpacking_left(apps_dir, owner, "1.0.1-0123456789ab.tmpzz81bq0c", 60)
    async with serve(app) as client:
        assert (await client.get("/health/live")).status_code == 200
        assert not stale.exists() and young.is_dir()
