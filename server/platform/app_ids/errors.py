"""App id registration errors (`app_id.*`, `developer_org.*`): each says what the developer or operator does next."""

from __future__ import annotations

from server.errors import Conflict, Forbidden, NotFound


class NotRegistered(Forbidden):
    code, title = (
        "app_id.not_registered",
        "This app id has no approved registration: request it with `yima-sdk register`, then wait for an "
        "operator's approval before you publish",
    )


class OutsideNamespace(Forbidden):
    code, title = (
        "app_id.outside_namespace",
        "This app id is outside your organisation's namespaces: use an id under one of them, or ask an operator "
        "to assign your organisation the namespace it belongs to",
    )


class RegisteredElsewhere(Conflict):
    code, title = "app_id.taken", "This app id is registered, or requested, by another organisation"


class RegistrationNotFound(NotFound):
    code, title = "app_id.registration_not_found", "No registration request for this app id"


class NotPending(Conflict):
    code, title = "app_id.not_pending", "Only a pending registration can be approved or rejected"


class OrgNotFound(NotFound):
    code, title = "developer_org.not_found", "No such developer organisation"


class NamespaceTaken(Conflict):
    code, title = (
        "developer_org.namespace_taken",
        "This namespace is, contains or lies inside a namespace another organisation holds",
    )


class NamespaceReserved(Forbidden):
    code, title = (
        "developer_org.namespace_reserved",
        "Namespaces under `gov` and `cn.gov` are reserved for the county's own organisation",
    )
