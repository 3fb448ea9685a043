"""Operations: liveness and readiness, Prometheus metrics."""
