"""一码购药 Buying medicine (gov.guangde.medicine): the pharmacist scans the resident's Ankang code, sells within
the rules, fills e-prescriptions of the medical visits app once; the health authority switches the purchase
registration of watched classes on and off and reads it. On yima_sdk alone (docs/miniapps/medicine.md).

Data (ctx.db collections, declared with their indexes in miniapp.toml; records are added, never edited):
    pharmacies, drugs   the demo catalogue (seed.py): `kind` otc or rx, `watched` a class or null
    tickets             `<pharmacy>.<n>`: one scan at that pharmacy's terminal, naming the resident to the sale
    sales               `kind` sale, payment, void or refund; every record names its `sale`
    ledgers             `<resident>.<class>`: the resident's watched-class boxes of the last 7 days, read and
                        written in the sale's own commit, so the limit holds under any concurrency; the
                        entries of a voided or refunded sale do not count
    redemptions         `<issuer app>.<pass id>[.<n>]`: an e-prescription filled, inserted in the sale's commit;
                        `<that>.released`: its sale voided or refunded, the prescription free to fill again
    registrations       one per watched item sold (negative boxes for a void or refund): what the authority reads
    reads               the authority's reads of the registrations (who, what, when): the app's own audit
Storage: `rules` (the registration switch and limits), counters `tickets:<pharmacy>`.

Modules, each registering its routes on the one `app` (common.py) when imported here:
    scans.py          the pharmacy terminal's scan; the pharmacies and the catalogue
    sales.py          the pharmacist's sales, e-prescriptions filled once, voids and refunds
    residents.py      paying, purchases, checking an e-prescription
    registrations.py  the authority's switch, limits and reads of the registrations
    demo.py           demo data (seed.py): the seed job and the admin's route
"""

from __future__ import annotations

import demo  # noqa: F401  (importing a module registers its handlers on `app`)
import registrations  # noqa: F401
import residents  # noqa: F401
import sales  # noqa: F401
import scans  # noqa: F401
from common import app

__all__ = ["app"]
