"""Who is calling: roles, access tokens (EdDSA JWT) and the guard every route declares."""

from server.auth.guards import Principal, allow, current_principal, route_guard
from server.auth.roles import Role
from server.auth.tokens import AccessTokens

__all__ = ["AccessTokens", "Principal", "Role", "allow", "current_principal", "route_guard"]
