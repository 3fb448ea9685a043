"""`ctx.db`: an app's collections with declared indexes, queries, aggregates and commits (service.py: `AppDb`)
and their SQL (repository.py). Its routes are the gateway's; its errors the SDK's contract errors."""
