"""`ctx.db`: an app's collections with declared indexes, queries, aggregates and commits (service.py: `AppDb`), how
a commit's writes reach the database (commits.py), and their SQL: documents (repository.py) and indexes
(index_repository.py). Its routes are the gateway's; its errors the SDK's contract errors."""
