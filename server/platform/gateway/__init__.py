"""The gateway into each mini-app: `/v1/miniapps/{id}/api/{path}` (controllers.py), the call through auth,
consent, quota and the sandbox (service.py: `Gateway`) and the short-lived app sessions pages call it with
(sessions.py). No repository: quotas are the kernel's rate limits, staff checks `staff.repository`, sessions are signed
tokens."""
