"""Vendored front-end code is exactly the release its SOURCE.md names: a changed byte fails here."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

VENDOR = Path(__file__).parent.parent / "server" / "web" / "static" / "vendor"


def test_every_vendored_file_matches_the_checksum_its_source_note_records() -> None:
    folders = sorted(p for p in VENDOR.iterdir() if p.is_dir())
    assert [p.name for p in folders] == ["jsqr-1.4.0"]
    for folder in folders:
        note = (folder / "SOURCE.md").read_text()
        assert (folder / "LICENSE").is_file()
        recorded = dict(re.findall(r"sha256 of `([^`]+)`: `([0-9a-f]{64})`", note))
        shipped = {p.name for p in folder.iterdir()} - {"SOURCE.md", "LICENSE"}
        assert set(recorded) == shipped, "every shipped file has its checksum noted"
        for name, digest in recorded.items():
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
