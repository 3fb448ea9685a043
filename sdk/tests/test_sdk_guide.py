"""The SDK guide's example app (docs/sdk.md) is real: its manifest, app and tests are extracted, its tests run
under pytest with the yima-sdk plugin, and `yima-sdk check` accepts it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from guide_examples import run_example_tests, write_example


def test_guide_example_app_passes_its_own_tests(tmp_path: Path) -> None:
    assert write_example("", tmp_path) == {"miniapp.toml", "app.py", "tests/test_app.py"}
    run = run_example_tests(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "5 passed" in run.stdout
    check = subprocess.run(
        [str(Path(sys.executable).parent / "yima-sdk"), "check"], cwd=tmp_path, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
