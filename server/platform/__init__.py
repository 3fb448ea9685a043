"""The mini-app platform: registry, review and release, consent, the gateway, capabilities and scan events."""
