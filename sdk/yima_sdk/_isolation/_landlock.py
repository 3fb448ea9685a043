"""Landlock through raw syscalls (ctypes): restrict this process to read-only access beneath a few paths.

Landlock is enforced by the kernel whatever the uid or capabilities, and is inherited by threads created later.
ABI 4+ also lets us refuse TCP bind/connect, ABI 6+ scopes signals and abstract unix sockets to the sandbox.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence

__all__ = ["abi_version", "restrict_to_readonly"]

_SYS_CREATE_RULESET = 444  # x86_64 and aarch64 share these numbers (new syscalls use the generic table)
_SYS_ADD_RULE = 445
_SYS_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# LANDLOCK_ACCESS_FS_* bits, with the ABI that introduced them.
_FS_ABI1 = (1 << 13) - 1  # execute .. make_sym
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_FS_IOCTL_DEV = 1 << 15  # ABI 5
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_NET_ALL = (1 << 0) | (1 << 1)  # bind_tcp, connect_tcp: ABI 4
_SCOPE_ALL = (1 << 0) | (1 << 1)  # abstract unix socket, signal: ABI 6

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


def abi_version() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is absent or disabled."""
    result = _libc.syscall(
        _SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION)
    )
    return max(int(result), 0)


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def restrict_to_readonly(paths: Sequence[str], listable: Sequence[str] = ()) -> str:
    """Allow only reading files and listing directories beneath `paths` (and only listing beneath
    `listable`); deny every other handled access.

    Returns a short description of what is in force; raises OSError if Landlock cannot be applied.
    """
    abi = abi_version()
    if abi < 1:
        raise OSError(0, "the kernel does not provide Landlock")
    fs = _FS_ABI1
    if abi >= 2:
        fs |= _FS_REFER
    if abi >= 3:
        fs |= _FS_TRUNCATE
    if abi >= 5:
        fs |= _FS_IOCTL_DEV
    attr = _RulesetAttr(
        handled_access_fs=fs,
        handled_access_net=_NET_ALL if abi >= 4 else 0,
        scoped=_SCOPE_ALL if abi >= 6 else 0,
    )
    size = 8 if abi < 4 else (16 if abi < 6 else 24)
    ruleset = _check(
        _libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)),
        "landlock_create_ruleset",
    )
    try:
        rules = [(p, _FS_READ_FILE | _FS_READ_DIR if os.path.isdir(p) else _FS_READ_FILE) for p in paths]
        for path, read in [*rules, *((p, _FS_READ_DIR) for p in listable)]:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = _PathBeneath(allowed_access=read, parent_fd=fd)
                _check(
                    _libc.syscall(
                        _SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), ctypes.c_uint32(0)
                    ),
                    f"landlock_add_rule({path})",
                )
            finally:
                os.close(fd)
        _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        _check(_libc.syscall(_SYS_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    extras = (", tcp bind/connect denied" if abi >= 4 else "") + (", signals scoped" if abi >= 6 else "")
    return f"ABI {abi}: read-only beneath {len(paths)} paths, list-only {len(listable)}{extras}"
