"""An app's `ui/` page bundle, served at `/miniapps/{id}/ui/` from the stored archive under a strict CSP
(service.py: `UiBundles`, controllers.py). No repository: the archive is the registry's (`apps.repository`)."""
