"""一码旅游 Tourism (gov.guangde.tourism): scenic spots of Guangde and of the partner counties of the 一地六县
alliance, daily time slots kept by each spot's staff, tickets bought with the one-card and held as passes, gates
that admit by the ticket pass or the Ankang code (online, or offline and settled later exactly once),
cross-county route packages, and reviews, on yima_sdk alone (docs/miniapps/tourism.md tells each flow).

Data (ctx.db collections, declared with their indexes in miniapp.toml):
    spots      name, county, price, whether a ticket re-enters the same day (`reentry`)
    slots      `<spot>.<day>.<hour>`: a time slot of a day with its capacity (in people)
    tickets    `<slot>.<visitor>`: one per visitor and slot, for `people` (a group ticket admits them all);
               status booked, cancelling (a refund owed), cancelled, or released (unpaid within 15 minutes:
               `hold_until`); `entered` counts the entries
    packages   the cross-county routes; orders `<package>.<day>.<visitor>`: one route pass honoured once at
               each of the package's spots (`entered` per spot); booked, cancelling or cancelled
    entries    one per admission, id `<gate scan id>`: written in the commit that counts the entry, so a scan
               (an offline upload sent twice, a retried check) settles exactly once
    reviews    `<spot>.<visitor>`: stars and text of a visitor who entered the spot
Counters (storage): `taken:<slot>` (bounded by the capacity in the ticket's own commit: never more people
reserved than places, whatever the concurrency), `admitted:<spot>.<day>` (the live count), `numbers:<slot>` and
`orders` (the numbers on the passes), `stars:<spot>` and `reviews:<spot>`.

Modules, each registering its routes on the one `app` (common.py) when imported here:
    slots.py    spots and their slots; spot staff's slots and capacities, closing a slot (its tickets refunded);
                the live counts for staff and bureau
    tickets.py  reserving (a group at once, concessions), paying, the ticket pass, cancelling with a refund
    cancels.py  each state change of a cancel or a release, and the `sweep` job that finishes them
    routes.py   cross-county route packages, cancelled with a refund until a gate admits them
    gates.py    the gate keeper's check and the gate terminal's scans, each settled exactly once
    gate_lists.py  paid tickets and route orders held at their spots' gates (terminal lists), for offline gates
    reviews.py  reviews by visitors who entered, and the ratings
    jobs.py     demo data (seed.py) for `yima dev`
"""

from __future__ import annotations

import cancels  # noqa: F401
import gates  # noqa: F401  (importing a module registers its handlers on `app`)
import jobs  # noqa: F401
import reviews  # noqa: F401
import routes  # noqa: F401
import slots  # noqa: F401
import tickets  # noqa: F401
from common import app

__all__ = ["app"]
