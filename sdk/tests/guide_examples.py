"""The SDK guide's runnable examples (docs/sdk.md): the code blocks whose first line is `# <prefix><path>` are one
example app, written into a folder and its tests run there under pytest with the yima-sdk plugin."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"


def write_example(prefix: str, folder: Path) -> set[str]:
    """Write the blocks headed `# {prefix}<path>` into `folder`; the paths written."""
    blocks = re.findall(
        rf"```(?:toml|python)\n# {re.escape(prefix)}([\w/.]+)\n(.*?)```",
        DOC.read_text(encoding="utf-8"),
        flags=re.S,
    )
    files = dict(blocks)
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    folder.chmod(0o755)  # as root the simulated app runs under its own uid and must read its folder
    return set(files)


def run_example_tests(folder: Path) -> subprocess.CompletedProcess[str]:
    """The example's own tests, run by pytest in `folder`."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
