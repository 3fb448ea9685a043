"""The scan pipeline (docs/scan.md): `service` decides online scans step by step, `offline` offline uploads,
`checks` what every code passes on both, `record` the durable record of a scan; `guard` is the replay guard in
Redis, `recorder` the group commit of online scans, `claims` the pruning of durable replay claims."""
