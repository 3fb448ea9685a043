"""The SDK guide's jobs example (docs/sdk.md, "Jobs") is real: its manifest, app and tests are extracted and its
tests pass under pytest with the yima-sdk plugin, against the simulator's clock."""

from __future__ import annotations

from pathlib import Path

from guide_examples import run_example_tests, write_example


def test_guide_jobs_example_passes_its_own_tests(tmp_path: Path) -> None:
    assert write_example("jobs example: ", tmp_path) == {"miniapp.toml", "app.py", "tests/test_app.py"}
    run = run_example_tests(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout
