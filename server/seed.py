"""Demo data for `yima dev`, applied idempotently: a demo resident with a real name, an operator, an authority.

Domains add their own demo data through an optional `seed_demo(app)` method on their plugin.
"""

from __future__ import annotations

import logging
from typing import Any

from server.auth.roles import Role

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
    core, identity = app.state.core, app.state.identity
    async with core.db.transaction() as conn:
        resident = await identity.account_id_for_phone(conn, DEMO_RESIDENT_PHONE, create=True)
        await identity.set_identity(conn, resident, DEMO_RESIDENT_NAME, DEMO_RESIDENT_ID)
        operator = await identity.account_id_for_phone(conn, DEMO_OPERATOR_PHONE, create=True)
        authority = await identity.account_id_for_phone(conn, DEMO_AUTHORITY_PHONE, create=True)
    await identity.grant_role("seed", operator, Role.OPERATOR)
    await identity.grant_role("seed", authority, Role.HEALTH_AUTHORITY)
    for plugin in app.plugins.init:
        seed = getattr(plugin, "seed_demo", None)
        if seed is not None:
            await seed(app)
    log.info("demo data ready")
