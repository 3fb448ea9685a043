"""`ctx.storage`: per-app namespaced documents with versions, compare-and-set and bounded counters
(service.py: `AppStorage`) and their SQL (repository.py). No routes of its own."""
