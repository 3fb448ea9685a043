"""一码乘车 Bus rides (gov.guangde.bus): fare tables kept by the operator's staff, rides priced and charged when a
bus terminal scans a rider's code, rides and a monthly statement for riders, disputed fares refunded by staff; on
yima_sdk alone, priced by the SDK's fare engine (`yima_sdk.fares`) as terminals price offline rides
(docs/miniapps/bus.md tells each flow).

Data (ctx.db collections, declared with their indexes in miniapp.toml):
    fare_tables  id `v<version>`: one version of the fare table (`yima_sdk.fares.FareTable` as JSON); versions are
                 immutable and take effect at `effective_from`, never in the past, so a ride keeps its price
    rides        id = the platform's scan id (a scan delivered twice is one ride): the priced ride, its payment
                 (an offline ride's: settlement's charge `ride_<scan id>`, refunded from when disputed)
    eligibility  concession categories granted by `concessions` staff: `<user>.<category>`, with an expiry
                 (a revoked grant's `expires_at` is its revocation, `granted_until` what was granted)
    clearing     id `<day>.<issuer>`: a day's clearing report, one row per partner county, written once;
                 clearing_rides (id = a partner ride: the report owing it), clearing_days (a report's state),
                 uncleared (id = a partner ride on no report yet: the next one takes it) - clearing.py
    riders       id = a rider's id, written when their page first shows it (`GET /me`): the riders a grant
                 may name
    disputes     id = the ride's id: one per ride, open -> (refunding ->) refunded, or rejected
    rider_months id `<rider>.<month>`: written in the commit recording each of the rider's rides that month, so
                 a rider's rides take turns: each is priced seeing those recorded before it (boarding.py)
    alights      id = the ride tapped off: its alighting stop and what the tap-off gave back (tapoff.py)
    taps         id = a tap-off's scan id: pending (its boarding not heard yet), applied or refused

Every fare table version is also published to the bus terminals (`ctx.terminals.publish("fares", ...)`): the
platform signs it, terminals sync it with their trust list and price offline ride codes with the version in force.
An offline ride reaches the app after the platform's settlement re-priced it with the version in force when it
happened and charged that once (`ScanData.settled_fen`; `amount_fen` is what the terminal priced): the table's
full fare, since a terminal knows no rider. The app prices it for the rider as an online scan (concession,
transfer, caps, in ride-time order) and gives the difference back at once (`ctx.payments.refund` of the ride's
`payment_id`, key = the ride), so an offline ride costs what it would have online; a terminal price that
settlement corrected is listed for the fares staff (`GET /fares/repriced`).

A bus terminal is registered with the unit of the line it serves (`line:k2`); a scan at it is a boarding of that
line, from the stop the terminal names (`ScanData.stop`). A boarding does not say where the rider gets off, so a
staged line charges its top stage; the rider's tap-off (`ScanData.tap == "off"`) re-prices the ride by stops
travelled and gives back the difference, once (tapoff.py).

Modules, each registering its routes on the one `app` (common.py) when imported here:
    boarding.py  the bus terminal's scan: a ride priced and charged once
    rides.py     riders: the lines, their rides, the monthly statement, disputes
    tapoff.py    the rider's tap-off: the ride re-priced by stops travelled, the difference given back once
    fares.py     staff: fare tables, disputed fares; the demo fare table (seed.py)
    concessions.py  staff: concession grants with an expiry, listed and revoked
    clearing.py  the daily clearing report per partner county, a row per ride, a county's own rows for its
                 `partner` clerk; rides whose terminal price was corrected
"""

from __future__ import annotations

import boarding  # noqa: F401  (importing a module registers its handlers on `app`)
import clearing  # noqa: F401
import concessions  # noqa: F401
import fares  # noqa: F401
import rides  # noqa: F401
import tapoff  # noqa: F401
from common import app

__all__ = ["app"]
