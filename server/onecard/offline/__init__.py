"""Offline rides: device certificates for offline ride codes (`service.py`), the settlement of the rides
terminals upload (`settlement.py`), their SQL (`repository.py`)."""
