"""Who is calling: roles, access tokens (EdDSA JWT) and the guard every route declares."""

from server.auth.guards import Principal, access_control_middleware, allow, current_principal
from server.auth.roles import Role
from server.auth.tokens import AccessTokens

__all__ = ["AccessTokens", "Principal", "Role", "access_control_middleware", "allow", "current_principal"]
