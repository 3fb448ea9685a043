"""Archive checks that need no server: compiled code is refused before review; unpacking is safe to race."""

from __future__ import annotations

import concurrent.futures
import io
import zipfile
from pathlib import Path

import pytest

from server.platform.apps.archive import check_archive, unpack

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
