"""What a developer installs is enough: in a fresh virtual environment, `pip install yima-sdk[test]` alone brings
what a scaffolded app's tests need (pytest and the `miniapp` fixture), and they pass."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SDK = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_test_extra_runs_a_new_scaffolds_tests(tmp_path: Path) -> None:
    # a copy: building the distribution writes build/ and *.egg-info/ beside its sources
    sdk = tmp_path / "sdk"
    shutil.copytree(SDK, sdk, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", f"{sdk}[test]"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    new = subprocess.run(
        [str(venv / "bin" / "yima-sdk"), "new", "visits", "--id", "cn.example.visits"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert new.returncode == 0, new.stderr
    assert "pip install 'yima-sdk[test]'" in new.stdout
    run = subprocess.run(
        [str(venv / "bin" / "pytest"), "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path / "visits",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "11 passed" in run.stdout
