"""The OS isolation layers a mini-app's worker applies to itself: the production sandbox worker
(`sandbox.worker`) and the local simulator's (`yima_sdk._simworker`) both call `apply_early_layers` and
`apply_layers`, so the simulator confines an app exactly as production does wherever the machine allows.

Linux only (ctypes on libc, Landlock and libseccomp); other systems report every kernel layer as missing.
The layer functions themselves live in `limits`, each returning the LayerReport of what it observed.
"""

from __future__ import annotations

import hashlib
import os

from yima_sdk._bridge import Init, LayerReport
from yima_sdk._isolation import limits

__all__ = ["UID_BASE", "UID_COUNT", "app_uid", "apply_early_layers", "apply_layers", "only_thread"]

UID_BASE = 2_000_000
"""Default first uid (and gid) of the range apps run under (the sandbox's `worker_uid_base`)."""
UID_COUNT = 65_536
"""Default size of that range (the sandbox's `worker_uid_count`)."""


def app_uid(app_id: str, base: int = UID_BASE, count: int = UID_COUNT) -> int:
    """The uid an app's workers run under: derived from the app id alone, so every server process (and every
    restart) runs one app under one uid, and RLIMIT_NPROC counts that app's threads across all of them."""
    digest = hashlib.blake2b(app_id.encode(), digest_size=8, person=b"yima-uid").digest()
    return base + int.from_bytes(digest, "big") % count


def apply_early_layers(init: Init, bridge_fd: int, *, keep_output: bool = False) -> dict[str, LayerReport]:
    """Descriptors and environment: before the event loop opens descriptors of its own."""
    wanted = set(init.layers)
    return {
        "fds": (
            limits.close_inherited_fds(bridge_fd, keep_output=keep_output)
            if "fds" in wanted
            else limits.skipped("fds")
        ),
        "env": limits.scrub_environment() if "env" in wanted else limits.skipped("env"),
    }


def only_thread() -> None:
    """Refuse to go on unless this is the process's only thread: Landlock and seccomp (without TSYNC) confine
    the calling thread and the threads it starts later, so a thread started earlier (an executor, a library's
    worker, libuv's pool) would stay free of them, and so would whatever it does for the app."""
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        raise RuntimeError(f"{threads} threads before the isolation layers; they would confine only one")


def apply_layers(init: Init, reports: dict[str, LayerReport], *, file_size: int = 0) -> list[LayerReport]:
    """Apply the rest of the layers named in `init.layers`, in the only order that works; report every layer.
    `file_size` is RLIMIT_FSIZE: 0 in production; the simulator, whose stdout may be a file, lifts it."""
    wanted = set(init.layers)
    if wanted & {"landlock", "seccomp"}:
        only_thread()
    reports["netns"] = limits.enter_network_namespace() if "netns" in wanted else limits.skipped("netns")
    readable = limits.readable_paths(init.app_folder)
    exposed, exposed_ok = "", True
    if "uid" in wanted and os.geteuid() == 0:
        try:
            exposed = limits.expose_readable_paths(readable, init.uid, init.gid)
        except OSError as exc:
            exposed, exposed_ok = f"; could not hide site-packages or expose interpreter paths: {exc}", False
    if "rlimits" in wanted:
        reports["rlimits"] = limits.apply_rlimits(
            init.memory_mb, init.cpu_seconds, init.open_files, init.processes, file_size
        )
    else:
        reports["rlimits"] = limits.skipped("rlimits")
    if "uid" in wanted:
        uid = limits.drop_privileges(init.uid, init.gid)
        reports["uid"] = LayerReport(
            name="uid", in_force=uid.in_force and exposed_ok, detail=uid.detail + exposed
        )
    else:
        reports["uid"] = limits.skipped("uid")
    reports["landlock"] = (
        limits.apply_landlock(readable) if "landlock" in wanted else limits.skipped("landlock")
    )
    reports["seccomp"] = limits.apply_seccomp() if "seccomp" in wanted else limits.skipped("seccomp")
    return [reports[name] for name in limits.LAYERS]
