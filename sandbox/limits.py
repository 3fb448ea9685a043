"""The OS isolation layers: they live in the SDK (`yima_sdk._isolation`) so the local simulator applies the
same ones; re-exported here under the names the sandbox has always used."""

from __future__ import annotations

from yima_sdk._isolation import app_uid, apply_early_layers, apply_layers
from yima_sdk._isolation.limits import (
    ENV_ALLOWED,
    LAYERS,
    ReadableTree,
    apply_landlock,
    apply_rlimits,
    apply_seccomp,
    close_inherited_fds,
    drop_privileges,
    enter_network_namespace,
    expose_readable_paths,
    python_paths,
    readable_paths,
    scrub_environment,
    site_packages,
    skipped,
)

__all__ = [
    "ENV_ALLOWED",
    "LAYERS",
    "ReadableTree",
    "app_uid",
    "apply_early_layers",
    "apply_landlock",
    "apply_layers",
    "apply_rlimits",
    "apply_seccomp",
    "close_inherited_fds",
    "drop_privileges",
    "enter_network_namespace",
    "expose_readable_paths",
    "python_paths",
    "readable_paths",
    "scrub_environment",
    "site_packages",
    "skipped",
]
