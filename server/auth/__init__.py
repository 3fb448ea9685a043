"""Who is calling: roles, access tokens (EdDSA JWT) and the guard every route declares.

A kernel package, not a domain: no routes (so no controllers or schemas) and no plugin (`CorePlugin` builds its
services: `tokens.AccessTokens`, `sessions.SessionRevocations`, `live_roles.LiveRoles`; `guards` is the
middleware). repository.py holds its SQL (ended sessions); the roles themselves are identity's, read through
`live_roles.RoleRecord`. No errors.py: it answers the kernel's 401/403 with `auth.*` codes (server/errors.py)."""

from server.auth.guards import Principal, access_control_middleware, allow, current_principal
from server.auth.roles import Role
from server.auth.tokens import AccessTokens

__all__ = ["AccessTokens", "Principal", "Role", "access_control_middleware", "allow", "current_principal"]
