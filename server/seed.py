"""Demo data for `yima dev`, applied idempotently: a demo resident with a real name, an operator, an authority.

Each domain adds its own demo data through an optional `seed_demo(app)` method on its plugin, in the plugins'
order (identity's accounts first); the demo's names and numbers are here, for every domain to use.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("yima.seed")

DEMO_RESIDENT_PHONE = "13800138000"
DEMO_OPERATOR_PHONE = "13900139000"
DEMO_AUTHORITY_PHONE = "13700137000"
# A syntactically valid, fictional ID number (Guangde region code, check digit computed).
DEMO_RESIDENT_NAME = "王小明"
DEMO_RESIDENT_ID = "341822199001011230"
DEMO_RESIDENT_CARD = "A12345678"
"""The demo resident's (fictional) social security card, recorded as the issuer's and linked to their one-card."""


async def seed_demo(app: Any) -> None:
    for plugin in app.plugins.init:
        seed = getattr(plugin, "seed_demo", None)
        if seed is not None:
            await seed(app)
    log.info("demo data ready")
