"""The mini-app platform: registry, review and release, consent, the gateway, capabilities and scan events.

Subpackages by concern (apps, runtime, gateway, residents, db, storage, jobs, ui, terminal_documents, staff,
app_ids, device_login), each with the standard modules it needs; here the plugin, the `Platform` built at
start-up (service.py), its ports to other domains, its settings, errors and the wire schemas its routes share.
No repository.py here: each subpackage holds its own SQL."""
