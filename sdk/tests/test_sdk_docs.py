"""The runnable example in docs/credentials.md really runs."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "credentials.md"


def test_terminal_guide_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "the terminal guide lost its example"
    exec(compile(blocks[-1], str(DOC), "exec"), {})
