"""`yima-sdk pack`: the same folder gives the same bytes and digest; what is shipped and what is refused."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import pytest
from yima_sdk import PackError
from yima_sdk.pack import MAX_FILES, pack, read_package, write_package

MANIFEST = 'id = "cn.example.pack"\nname = "Pack"\nversion = "1.0.0"\n'


def make_app(folder: Path) -> Path:
    (folder / "miniapp.toml").write_text(MANIFEST)
    (folder / "app.py").write_text("from yima_sdk import App\napp = App()\n")
    (folder / "lib").mkdir()
    (folder / "lib" / "fares.py").write_text("FARE = 200\n")
    (folder / "lib" / "__pycache__").mkdir()
    (folder / "lib" / "__pycache__" / "fares.cpython-311.pyc").write_bytes(b"\0")
    (folder / "tests").mkdir()
    (folder / "tests" / "test_app.py").write_text("def test(): pass\n")
    (folder / ".env").write_text("SECRET=1\n")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref\n")
    return folder


def test_packing_twice_gives_identical_bytes_and_digest(tmp_path: Path) -> None:
    folder = make_app(tmp_path)
    first = pack(folder)
    # new mtimes and permissions must not change a byte
    os.utime(folder / "app.py", (1, 1))
    (folder / "lib" / "fares.py").chmod(0o755)
    second, written = write_package(folder)
    assert first.data == second.data == written.read_bytes()
    assert first.digest == "sha256:" + hashlib.sha256(first.data).hexdigest()
    assert written == folder / "dist" / "cn.example.pack-1.0.0.zip"
    # the archive written into dist/ is not packed into the next archive
    assert pack(folder).data == first.data


def test_archive_layout_follows_the_contract(tmp_path: Path) -> None:
    package = pack(make_app(tmp_path))
    with zipfile.ZipFile(io.BytesIO(package.data)) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == [
        "app.py",
        "lib/fares.py",
        "miniapp.toml",
    ]  # sorted, no tests/dotfiles
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}


def test_symlinks_and_limits_are_refused(tmp_path: Path) -> None:
    folder = make_app(tmp_path)
    (folder / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(PackError, match="symlink"):
        pack(folder)
    (folder / "passwd").unlink()
    for i in range(MAX_FILES):
        (folder / "lib" / f"m{i}.py").write_text("")
    with pytest.raises(PackError, match="at most 500"):
        pack(folder)


def test_invalid_manifest_is_not_packed(tmp_path: Path) -> None:
    (tmp_path / "miniapp.toml").write_text(MANIFEST.replace("1.0.0", "one"))
    with pytest.raises(Exception, match="semantic version"):
        pack(tmp_path)


def test_read_package_round_trip(tmp_path: Path) -> None:
    package, written = write_package(make_app(tmp_path))
    again = read_package(written)
    assert again.digest == package.digest and again.manifest == package.manifest
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(PackError, match="not a mini-app archive"):
        read_package(tmp_path / "junk.zip")
