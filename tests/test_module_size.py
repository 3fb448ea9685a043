"""No module of server/, sandbox/, sdk/yima_sdk/ or miniapps/ over 400 lines without a reason stated at its top
(STYLE.md rule 1).

Past 400 lines a module becomes a package of private modules behind a re-exporting `__init__.py`, or modules split
by concern (a mini-app's `app.py` imports one module per area, as a third-party developer's app would); where a
split would read worse, a line of its module docstring starts "Over 400 lines because" and says why. The reason
is read, not counted: a bare "Over 400 lines because" does not pass."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("server", "sandbox", "sdk/yima_sdk", "miniapps")
LIMIT = 400
REASON = re.compile(r"^[ \t]*Over 400 lines because[ \t]+\w", re.MULTILINE)


def _unexplained(text: str) -> bool:
    """True for a module past the limit whose docstring gives no reason."""
    if len(text.splitlines()) <= LIMIT:
        return False
    return not REASON.search(ast.get_docstring(ast.parse(text)) or "")


def test_the_rule_tells_long_unexplained_modules_from_the_rest():
    body = "x = 1\n" * LIMIT
    assert not _unexplained('"""Short enough."""\n' + "x = 1\n" * (LIMIT - 1))
    assert _unexplained('"""Too long, and silent about it."""\n' + body)
    assert _unexplained('"""Too long.\n\nOver 400 lines because\n"""\n' + body)
    assert _unexplained('"""Too long.\n\nOver 400 lines because\nof nothing said on that line."""\n' + body)
    assert _unexplained('# Over 400 lines because a comment is not the docstring\n"""Too long."""\n' + body)
    assert not _unexplained(
        '"""Too long.\n\nOver 400 lines because one match over every operation.\n"""\n' + body
    )


def test_no_module_over_400_lines_without_a_reason_at_its_top():
    unexplained = {
        str(module.relative_to(ROOT)): len(module.read_text(encoding="utf-8").splitlines())
        for package in PACKAGES
        for module in sorted((ROOT / package).rglob("*.py"))
        if _unexplained(module.read_text(encoding="utf-8"))
    }
    assert not unexplained, (
        f"modules over {LIMIT} lines: split them by concern, or say why not in a docstring line "
        f'"Over {LIMIT} lines because ...": {unexplained}'
    )
