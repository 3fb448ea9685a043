"""The terminal lists example of the SDK guide (docs/sdk.md, "terminals: lists") is real: its manifest, app and
tests are extracted and its tests run under pytest with the yima-sdk plugin, against the simulator and a real
terminal admitting offline."""

from __future__ import annotations

from pathlib import Path

from guide_examples import run_example_tests, write_example


def test_lists_example_app_passes_its_own_tests(tmp_path: Path) -> None:
    assert write_example("lists-guide/", tmp_path) == {"miniapp.toml", "app.py", "tests/test_app.py"}
    run = run_example_tests(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout
