"""The docs stay true on every checkout: no path of one machine, no count of tests that drifts with the suite."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Home and work folders of one machine; system paths (/usr/share/zoneinfo, /proc) are the same everywhere.
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|home|root|Users|tmp|mnt|srv|opt)/[\w.-]+")
TEST_COUNT = re.compile(r"\b\d[\d,]*\+?\s+(?:tests|test cases|test functions|passed)\b", re.IGNORECASE)


def _documents() -> list[Path]:
    docs = sorted((ROOT / "docs").rglob("*.md"))
    return [ROOT / "README.md", *docs, *sorted((ROOT / "sdk").glob("*.md"))]


def _findings(pattern: re.Pattern[str]) -> list[str]:
    found = []
    for path in _documents():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            found += [f"{path.relative_to(ROOT)}:{number}: {m.group(0)}" for m in pattern.finditer(line)]
    return found


def test_docs_name_no_path_of_one_machine() -> None:
    assert len(_documents()) > 5
    assert _findings(MACHINE_PATH) == []


def test_docs_state_no_test_counts() -> None:
    assert _findings(TEST_COUNT) == []


def test_the_patterns_catch_what_they_are_for() -> None:
    assert MACHINE_PATH.search("cd /work/main && make test") and MACHINE_PATH.search("see /home/dev/yima")
    assert not MACHINE_PATH.search("/usr/share/zoneinfo, `data/pg`, ~/.cache/yima, ./data/pg")
    assert TEST_COUNT.search("pytest tests/platform  # 14 tests, ~25 s") and TEST_COUNT.search("1,200 tests")
    assert not TEST_COUNT.search("8 workers x 32 capability calls; tests/platform")
