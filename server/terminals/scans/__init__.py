"""The scan pipeline (docs/scan.md): `service` decides online scans and offline uploads; `guard` is the replay
guard in Redis, `recorder` the group commit of online scans, `claims` the pruning of durable replay claims."""
