"""axe-core run inside a page: the serious and critical violations it finds, described for an assertion message.

axe-core comes from the `axe-playwright-python` wheel, which ships Deque's `axe.min.js`; it is evaluated in the
page through the DevTools protocol, which the page's Content-Security-Policy does not govern, so the page under
test keeps its real policy.

    assert await serious_violations(tab.page) == []
"""

from __future__ import annotations

from typing import Any

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page

_axe = Axe()


async def serious_violations(page: Page) -> list[str]:
    """`rule (impact): target, ...` for each serious or critical violation on the page as it is now."""
    results = await _axe.run(page)
    found: list[dict[str, Any]] = results.response["violations"]
    return [
        f"{v['id']} ({v['impact']}): " + ", ".join(str(n["target"]) for n in v["nodes"][:3])
        for v in found
        if v["impact"] in ("serious", "critical")
    ]
