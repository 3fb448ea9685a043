"""The OS isolation layers a worker applies to itself, each returning a LayerReport of what it observed.

Order matters (see worker.py): descriptors and environment first, then the network namespace and any mount
rearrangement while still root, then rlimits, the uid drop, Landlock and finally seccomp (which forbids the
syscalls the earlier steps need). Each function verifies its own effect instead of trusting a return code.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import signal
import site
import socket
import stat
import sys

import msgspec

from yima_sdk._bridge import LayerReport
from yima_sdk._isolation import _landlock, _seccomp

__all__ = [
    "LAYERS",
    "ReadableTree",
    "apply_landlock",
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

LAYERS: tuple[str, ...] = ("uid", "netns", "landlock", "seccomp", "rlimits", "env", "fds")
"""Every layer, by the name settings and reports use."""

ENV_ALLOWED = frozenset(
    {"LANG", "LC_ALL", "TZ", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED", "MALLOC_ARENA_MAX"}
)

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY = 1
_MS_REMOUNT = 32
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38

_libc = ctypes.CDLL(None, use_errno=True)


def _libc_call(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def close_inherited_fds(bridge_fd: int, *, keep_output: bool = False) -> LayerReport:
    """Point 0-2 at /dev/null and close every other descriptor except the bridge. `keep_output` (the local
    simulator) leaves stdout and stderr where they are, so the app's print() reaches the developer."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0,) if keep_output else (0, 1, 2):
        if fd != null:
            os.dup2(null, fd)
    if null > 2:
        os.close(null)
    os.closerange(3, bridge_fd)
    os.closerange(bridge_fd + 1, 65536)
    left = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
    # listdir itself holds one descriptor open while listing: ignore ones that no longer exist
    left = [fd for fd in left if _is_open(fd)]
    extra = [fd for fd in left if fd not in (0, 1, 2, bridge_fd)]
    return LayerReport(name="fds", in_force=not extra, detail=f"open descriptors {left} (bridge {bridge_fd})")


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def scrub_environment() -> LayerReport:
    """Drop every environment variable but a few harmless locale/runtime ones."""
    for key in list(os.environ):
        if key not in ENV_ALLOWED:
            del os.environ[key]
    left = sorted(os.environ)
    return LayerReport(name="env", in_force=all(k in ENV_ALLOWED for k in left), detail=f"variables {left}")


def enter_network_namespace() -> LayerReport:
    """unshare(CLONE_NEWNET): a namespace whose only interface, lo, is down: no network at all.

    As root this needs nothing else; unprivileged (a developer laptop) it tries a user namespace too.
    """
    try:
        flags = _CLONE_NEWNET if os.geteuid() == 0 else _CLONE_NEWUSER | _CLONE_NEWNET
        _libc_call(_libc.unshare(flags), "unshare(CLONE_NEWNET)")
    except OSError as exc:
        return LayerReport(name="netns", in_force=False, detail=str(exc))
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("127.0.0.1", 9))
    except OSError as exc:
        unreachable = exc.errno == errno.ENETUNREACH
    else:
        unreachable = False
    finally:
        probe.close()
    names = [name for _, name in socket.if_nameindex()]
    return LayerReport(
        name="netns",
        in_force=unreachable,
        detail=f"fresh namespace, interfaces {names}, 127.0.0.1 unreachable={unreachable}",
    )


class ReadableTree(msgspec.Struct, frozen=True, kw_only=True):
    """What a worker may read (Landlock) and which installed-package folders it must not even see."""

    readable: list[str]
    """Read files and list directories beneath these."""
    listable: list[str]
    """List only: ancestors of a hidden folder, whose other children are in `readable` one by one."""
    hidden: list[str]
    """site-packages folders: unreadable under Landlock, and (root hosts) covered by an empty tmpfs so that
    not even stat() finds what is installed; the readable paths beneath (msgspec) are bound back."""


def readable_paths(app_folder: str) -> ReadableTree:
    """The app, yima_sdk, msgspec, the stdlib and loaded shared libraries, but no other installed package."""
    import msgspec

    import yima_sdk

    _seccomp.preload()  # so its directory shows up in the mapped libraries below
    wanted = {
        os.path.realpath(app_folder),
        os.path.dirname(os.path.realpath(yima_sdk.__file__)),
        os.path.dirname(os.path.realpath(msgspec.__file__)),
        *(os.path.realpath(p) for p in python_paths() if os.path.isdir(p)),
    }
    with open("/proc/self/maps", encoding="utf-8") as maps:
        # each library is mapped several times: resolve each once
        libraries = {line.rstrip("\n").split(maxsplit=5)[-1] for line in maps}
    for path in libraries:
        if path.startswith("/") and ".so" in path and os.path.exists(path):
            wanted.add(os.path.dirname(os.path.realpath(path)))
    if os.path.isdir("/usr/share/zoneinfo"):
        wanted.add("/usr/share/zoneinfo")
    hidden = site_packages()
    kept = [p for p in wanted if any(_beneath(p, h) for h in hidden)]  # msgspec inside site-packages
    readable: list[str] = []
    listable: list[str] = []
    for path in _top_most(sorted(p for p in wanted if os.path.exists(p))):
        _grant(path, hidden, kept, readable, listable)
    return ReadableTree(readable=_top_most(sorted(readable)), listable=sorted(set(listable)), hidden=hidden)


def site_packages() -> list[str]:
    """Every site-packages / dist-packages folder of this interpreter and its base (venv or not)."""
    candidates = site.getsitepackages([sys.prefix, sys.base_prefix]) + [
        p for p in sys.path if p.endswith(("site-packages", "dist-packages"))
    ]
    return sorted({os.path.realpath(p) for p in candidates if os.path.isdir(p)})


def _beneath(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _top_most(paths: list[str]) -> list[str]:
    """Drop paths beneath another one: they add nothing to a rule on the upper one. (Sorted by components,
    a path's descendants come right after it: one pass.)"""
    kept: list[str] = []
    for path in sorted(set(paths), key=lambda p: p.split("/")):
        if not kept or not _beneath(path, kept[-1]):
            kept.append(path)
    return kept


def _grant(path: str, hidden: list[str], kept: list[str], readable: list[str], listable: list[str]) -> None:
    """Grant `path` except the hidden folders in it: their ancestors become list-only, the rest readable one
    by one (a Landlock rule reaches everything beneath it, so the stdlib folder, which holds site-packages,
    cannot be granted whole). Folders wanted on their own (`kept`) stay readable inside a hidden one."""
    if any(_beneath(path, h) for h in hidden) and not any(_beneath(path, k) for k in kept):
        return
    if not any(_beneath(h, path) for h in hidden):
        readable.append(path)
        return
    listable.append(path)
    for name in sorted(os.listdir(path)):
        child = os.path.join(path, name)
        if os.path.exists(child):
            _grant(child, hidden, kept, readable, listable)


def _hidden_ancestor(path: str, uid: int, gid: int) -> str | None:
    """The top-most ancestor of `path` that `uid` cannot traverse (e.g. a 0700 /root holding pyenv)."""
    parts = path.strip("/").split("/")
    current = ""
    for part in parts[:-1]:
        current += "/" + part
        st = os.stat(current)
        if st.st_uid == uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid == gid:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            return current
    return None


def expose_readable_paths(tree: ReadableTree, uid: int, gid: int) -> str:
    """Root hosts: in a private mount namespace, hide what the worker must not even stat() and make reachable
    what it must read.

    Every site-packages folder is covered by an empty tmpfs, with only the readable paths beneath it (msgspec)
    bound back read-only. A private ancestor of a needed path (the interpreter living under a 0700 /root) is
    covered the same way, with the needed subtrees bound back: the rest of that directory disappears too.
    """
    covers: dict[str, list[str]] = {}
    for path in _top_most(sorted(tree.readable + tree.listable)):
        ancestor = _hidden_ancestor(path, uid, gid)
        if ancestor is not None:
            covers.setdefault(ancestor, []).append(path)
    for folder in tree.hidden:
        covers.setdefault(folder, []).extend(p for p in tree.readable if _beneath(p, folder))
    if not covers:
        return ""
    _libc_call(_libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # private propagation first, so nothing below leaks back into the host's mount namespace
    _libc_call(_libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "mount(private /)")
    # outer folders first: a site-packages inside a bound-back private folder is covered after the bind
    for folder in sorted(covers, key=lambda f: f.count("/")):
        _cover(folder, covers[folder])
    return f"; private dirs hidden {sorted(covers)}"


def _cover(folder: str, keep: list[str]) -> None:
    """An empty tmpfs over `folder`, with the `keep` paths beneath it bound back read-only."""
    fds = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path in keep}
    _libc_call(
        _libc.mount(b"tmpfs", folder.encode(), b"tmpfs", 0, b"mode=0755,size=64k"),
        f"mount(tmpfs {folder})",
    )
    for path, fd in fds.items():
        os.makedirs(path, exist_ok=True)
        source = f"/proc/self/fd/{fd}".encode()
        _libc_call(_libc.mount(source, path.encode(), None, _MS_BIND | _MS_REC, None), f"bind {path}")
        _libc_call(
            _libc.mount(None, path.encode(), None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY, None),
            f"remount {path} read-only",
        )
        os.close(fd)


def apply_rlimits(
    memory_mb: int, cpu_seconds: int, open_files: int, processes: int, file_size: int = 0
) -> LayerReport:
    """Address space, CPU seconds, files, processes, file size (0: the worker writes no file), no core dumps.

    The address space may grow by twice the app's memory budget: allocators and thread stacks reserve more
    than they touch. The budget itself is on resident memory, which the host checks after every call
    (recycling the worker); this limit is the backstop that makes a runaway allocation fail at once.
    """
    with open("/proc/self/statm", encoding="ascii") as statm:
        vm_bytes = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limits = {
        resource.RLIMIT_AS: vm_bytes + 2 * memory_mb * 1024 * 1024,
        resource.RLIMIT_CPU: cpu_seconds,
        resource.RLIMIT_NOFILE: open_files,
        resource.RLIMIT_NPROC: processes,
        resource.RLIMIT_FSIZE: file_size,
        resource.RLIMIT_CORE: 0,
    }
    try:
        for which, value in limits.items():
            # soft CPU limit first (SIGXCPU), hard one second later (SIGKILL)
            hard = value + 1 if which == resource.RLIMIT_CPU else value
            resource.setrlimit(which, (value, hard))
    except (OSError, ValueError) as exc:
        return LayerReport(name="rlimits", in_force=False, detail=str(exc))
    got = {which: resource.getrlimit(which)[0] for which in limits}
    ok = all(got[which] == value for which, value in limits.items())
    return LayerReport(
        name="rlimits",
        in_force=ok,
        detail=f"as={got[resource.RLIMIT_AS] >> 20}MiB cpu={cpu_seconds}s nofile={open_files} "
        f"nproc={processes} fsize={'unlimited' if file_size < 0 else file_size} core=0",
    )


def drop_privileges(uid: int, gid: int) -> LayerReport:
    """setgroups([]), setresgid, setresuid to the unprivileged ids when root; then no_new_privs and
    a parent-death SIGKILL (set after the uid change, which would clear it)."""
    try:
        if os.geteuid() == 0:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
        _libc_call(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        _libc_call(_libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
    except OSError as exc:
        return LayerReport(name="uid", in_force=False, detail=str(exc))
    ids = os.getresuid()
    # a regained root is impossible once all three ids are dropped: prove it
    try:
        os.setuid(0)
        regained = True
    except PermissionError:
        regained = False
    in_force = 0 not in ids and not regained and os.getgroups() == []
    return LayerReport(name="uid", in_force=in_force, detail=f"uids {ids} gids {os.getresgid()}")


def apply_landlock(tree: ReadableTree) -> LayerReport:
    """Read-only access beneath `tree.readable` (list-only on `tree.listable`), nothing else; verified by
    failing to list `/`."""
    try:
        detail = _landlock.restrict_to_readonly(tree.readable, tree.listable)
    except OSError as exc:
        return LayerReport(name="landlock", in_force=False, detail=str(exc))
    try:
        os.listdir("/")
        blocked = False
    except PermissionError:
        blocked = True
    granted = _top_most(sorted(tree.readable + tree.listable))
    return LayerReport(
        name="landlock", in_force=blocked, detail=f"{detail}: {granted}, site-packages hidden {tree.hidden}"
    )


def apply_seccomp() -> LayerReport:
    try:
        detail = _seccomp.load_allow_list()
    except OSError as exc:
        return LayerReport(name="seccomp", in_force=False, detail=str(exc))
    return LayerReport(name="seccomp", in_force=True, detail=detail)


def skipped(name: str) -> LayerReport:
    return LayerReport(name=name, in_force=False, detail="not requested by the host")


def python_paths() -> list[str]:
    """The interpreter's own import paths (stdlib, lib-dynload), without site-packages or the project."""
    base = sys.base_prefix
    return [p for p in sys.path if p.startswith(base) and "site-packages" not in p]
