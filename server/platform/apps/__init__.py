"""The app registry: developer tokens, uploads and their checks (archive.py), review, phased release,
rollback, suspension, quotas and scene bindings (service.py: `Registry`), the developer and operator routes, and
`yima dev --app`'s loader of local folders (dev.py). Its errors are the platform's (server/platform/errors.py)."""
