"""What residents do with mini-apps outside the gateway: the catalog, consent per scope, the inbox and
confirming payments (service.py: `Residents`, controllers.py), and the SQL of what they hold with apps: consent,
app-scoped ids, messages, payments, app passes (repository.py)."""
