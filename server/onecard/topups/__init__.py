"""Top-ups through the payment provider and the daily reconciliation (`service.py`), their SQL (`repository.py`)."""
