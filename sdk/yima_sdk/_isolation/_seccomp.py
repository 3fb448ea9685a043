"""The seccomp allow-list, loaded through libseccomp (ctypes; libseccomp2 ships with every mainstream distro).

Everything not listed fails with EPERM, so a mini-app sees a plain PermissionError: no new sockets (only the
bridge it already holds), no exec, no fork (threads only), no ptrace, no mount, no signals to other processes,
and the few calls that name a process (prlimit64, getpriority, sched_getaffinity) only on the worker itself.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os

__all__ = ["ALLOWED_SYSCALLS", "SELF_ONLY_SYSCALLS", "load_allow_list", "preload", "refuse_io_uring"]

# Calls that take a pid: allowed only on the worker itself (pid 0 or its own pid), never on a neighbour; the
# argument (index) that names the target process.
SELF_ONLY_SYSCALLS: dict[str, int] = {
    "prlimit64": 0,  # getrlimit/setrlimit go through prlimit64(0, ...); on another pid it lowered their limits
    "sched_getaffinity": 0,  # os.cpu_count(), os.sched_getaffinity(0)
    "getpriority": 1,  # getpriority(which, who): who 0 is the caller
    "get_robust_list": 0,
}

# What CPython 3.11, its asyncio event loop, imports and threads actually use, and nothing that reaches out.
ALLOWED_SYSCALLS = (
    # files the Landlock layer already limits to read-only paths; the bridge socket
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "preadv",
    "preadv2",
    "open",
    "openat",
    "openat2",
    "close",
    "close_range",
    "stat",
    "fstat",
    "lstat",
    "newfstatat",
    "statx",
    "lseek",
    "access",
    "faccessat",
    "faccessat2",
    "readlink",
    "readlinkat",
    "getdents64",
    "getcwd",
    "fcntl",
    "ioctl",
    "dup",
    "dup2",
    "dup3",
    "pipe2",
    "fsync",
    "fdatasync",
    # event loop and the already-open bridge socket (socket/connect/bind/listen/accept are absent)
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "poll",
    "ppoll",
    "select",
    "pselect6",
    "recvfrom",
    "recvmsg",
    "recvmmsg",
    "sendto",
    "sendmsg",
    "sendmmsg",
    "shutdown",
    "getsockname",
    "getpeername",
    "getsockopt",
    "setsockopt",
    # memory
    "mmap",
    "munmap",
    "mprotect",
    "mremap",
    "madvise",
    "brk",
    "mincore",
    # signals to itself, time, identity, limits
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "rt_sigpending",
    "rt_sigtimedwait",
    "sigaltstack",
    "restart_syscall",
    "clock_gettime",
    "clock_getres",
    "clock_nanosleep",
    "nanosleep",
    "gettimeofday",
    "time",
    "getpid",
    "getppid",
    "gettid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getresuid",
    "getresgid",
    "getgroups",
    "getrandom",
    "uname",
    "getrlimit",
    "getrusage",
    "times",
    "sysinfo",
    "umask",
    "sched_yield",
    # threads (clone itself is allowed separately, only with CLONE_THREAD)
    "futex",
    "futex_waitv",
    "set_robust_list",
    "set_tid_address",
    "rseq",
    "membarrier",
    "exit",
    "exit_group",
)

_CLONE_THREAD = 0x00010000
_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_CMP_EQ = 4
_SCMP_CMP_MASKED_EQ = 7


def _errno_action(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


@functools.cache
def _lib() -> ctypes.CDLL:
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = (ctypes.c_uint32,)
    lib.seccomp_rule_add_array.argtypes = (
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    )
    lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    lib.seccomp_load.argtypes = (ctypes.c_void_p,)
    lib.seccomp_release.argtypes = (ctypes.c_void_p,)
    return lib


def _add(lib: ctypes.CDLL, ctx: int, action: int, name: str, *conds: _ArgCmp) -> None:
    nr = lib.seccomp_syscall_resolve_name(name.encode())
    if nr < 0:
        return  # not a syscall on this architecture (e.g. `time` on aarch64)
    array = (_ArgCmp * max(len(conds), 1))(*conds)
    rc = lib.seccomp_rule_add_array(ctypes.c_void_p(ctx), action, nr, len(conds), array)
    if rc < 0:
        raise OSError(-rc, f"seccomp_rule_add({name}): {os.strerror(-rc)}")


def preload() -> None:
    """Load libseccomp now, while the dynamic loader may still read its cache (Landlock comes next)."""
    try:
        _lib()
    except OSError:
        pass  # reported when the filter is loaded


def refuse_io_uring() -> None:
    """A first filter: io_uring answers ENOSYS, everything else is allowed (the allow-list comes later and refuses
    io_uring too). libuv (uvloop) sets up an io_uring for its epoll calls as a loop is made, and aborts the
    process when the allow-list then refuses io_uring_enter; refused from the start, libuv keeps to plain epoll.
    Raises OSError on failure."""
    try:
        lib = _lib()
    except OSError as exc:
        raise OSError(errno.ENOSYS, f"libseccomp.so.2 not found: {exc}") from None
    ctx = lib.seccomp_init(_SCMP_ACT_ALLOW)
    if not ctx:
        raise OSError(errno.ENOMEM, "seccomp_init failed")
    try:
        for name in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
            _add(lib, ctx, _errno_action(errno.ENOSYS), name)
        rc = lib.seccomp_load(ctypes.c_void_p(ctx))
        if rc < 0:
            raise OSError(-rc, f"seccomp_load: {os.strerror(-rc)}")
    finally:
        lib.seccomp_release(ctypes.c_void_p(ctx))


def load_allow_list() -> str:
    """Install the filter on this thread (call before any other thread exists). Raises OSError on failure."""
    try:
        lib = _lib()
    except OSError as exc:
        raise OSError(errno.ENOSYS, f"libseccomp.so.2 not found: {exc}") from None
    ctx = lib.seccomp_init(_errno_action(errno.EPERM))
    if not ctx:
        raise OSError(errno.ENOMEM, "seccomp_init failed")
    try:
        for name in ALLOWED_SYSCALLS:
            _add(lib, ctx, _SCMP_ACT_ALLOW, name)
        # threads yes, processes no: clone must carry CLONE_THREAD; clone3 hides its flags in memory seccomp
        # cannot read, so it answers ENOSYS and glibc falls back to clone.
        _add(
            lib, ctx, _SCMP_ACT_ALLOW, "clone", _ArgCmp(0, _SCMP_CMP_MASKED_EQ, _CLONE_THREAD, _CLONE_THREAD)
        )
        _add(lib, ctx, _errno_action(errno.ENOSYS), "clone3")
        # pid-taking calls on ourselves only: one app must not read or lower a neighbour's limits. The
        # comparison is on the whole 64-bit register, so a pid smuggled in the high bits does not match.
        for name, arg in SELF_ONLY_SYSCALLS.items():
            for pid in (0, os.getpid()):
                _add(lib, ctx, _SCMP_ACT_ALLOW, name, _ArgCmp(arg, _SCMP_CMP_EQ, pid, 0))
        # signals only to our own thread group (raise(), abort())
        _add(lib, ctx, _SCMP_ACT_ALLOW, "tgkill", _ArgCmp(0, _SCMP_CMP_EQ, os.getpid(), 0))
        rc = lib.seccomp_load(ctypes.c_void_p(ctx))
        if rc < 0:
            raise OSError(-rc, f"seccomp_load: {os.strerror(-rc)}")
    finally:
        lib.seccomp_release(ctypes.c_void_p(ctx))
    # Prove it: a new socket must now be refused (the bridge stays usable).
    import socket

    try:
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).close()
    except PermissionError:
        pass
    else:
        raise OSError(errno.EPERM, "seccomp loaded but a new socket was still allowed")
    return (
        f"filter mode, {len(ALLOWED_SYSCALLS)} syscalls allowed, {len(SELF_ONLY_SYSCALLS)} only on itself,"
        " clone only for threads, default EPERM"
    )
