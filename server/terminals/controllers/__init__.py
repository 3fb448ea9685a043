"""The terminals domain's routes: `terminals` (administration, enrolment, tokens, time) and `scans` (online scans,
offline batches, a resident's scan history)."""
