"""Archive checks that need no server: compiled code is refused before review."""

from __future__ import annotations

import io
import zipfile

import pytest

from server.platform.apps.archive import check_archive

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
