"""The `ctx.terminals` example of the SDK guide (docs/sdk.md, "terminals") is real: its manifest, app and tests are
extracted and its tests run under pytest with the yima-sdk plugin, against the simulator and a real terminal."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"


def test_terminals_example_app_passes_its_own_tests(tmp_path: Path) -> None:
    blocks = re.findall(
        r"```(?:toml|python)\n# terminals-guide/([\w/.]+)\n(.*?)```",
        DOC.read_text(encoding="utf-8"),
        flags=re.S,
    )
    files = dict(blocks)
    assert set(files) == {"miniapp.toml", "app.py", "tests/test_app.py"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    tmp_path.chmod(0o755)  # as root the simulated app runs under its own uid and must read its folder
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout
