"""一码就医 Medical visits (gov.guangde.medical): sessions, bookings, check-in by scanning the Ankang code, the
clinic queue and e-prescriptions, on yima_sdk alone (docs/miniapps/medical.md tells each flow).

Data (ctx.db collections, declared with their indexes in miniapp.toml):
    institutions  hospitals and township health centres, each with the age from which the fee is waived
    departments   of an institution; doctors of a department
    sessions      a doctor's morning (`am`) or afternoon (`pm`) of a day: capacity, fee, walk-ins allowed
    bookings      id `<session>.<resident>`: one per resident and session; status booked -> waiting (checked
                  in) -> called -> done, or cancelled / no_show; `number` is the queue number
Counters (storage): `taken:<session>` (bounded by the capacity in the booking's own commit: never more bookings
than slots, whatever the concurrency) and `numbers:<session>` (queue numbers, never reused).

Modules, each registering its routes on the one `app` (common.py) when imported here:
    sessions.py   finding sessions; schedulers publish, change and cancel them; the authority's day figures
    bookings.py   booking a slot (fee, waiver, family members), the resident's bookings, cancelling with a refund
    clinic.py     check-in by scan, the clinic screens, the doctors' queue and e-prescriptions
    referrals.py  two-way referrals between township centres and county hospitals
    jobs.py       tomorrow's reminders; demo data (seed.py) for `yima dev`
"""

from __future__ import annotations

import bookings  # noqa: F401  (importing a module registers its handlers on `app`)
import clinic  # noqa: F401
import jobs  # noqa: F401
import referrals  # noqa: F401
import sessions  # noqa: F401
from common import app

__all__ = ["app"]
