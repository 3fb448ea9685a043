"""Operations: liveness and readiness, Prometheus metrics, the multi-worker supervisor (workers.py).

controllers, schemas and plugin; no service or repository (readiness asks the core's pool and cache, which the
kernel owns) and no errors.py (a failed check is a 503 answer, not an error)."""
