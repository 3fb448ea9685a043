"""Hostile mini-app: sets up an io_uring, the kernel interface that bypasses per-syscall filtering (its
operations are submitted through shared memory, not syscalls seccomp sees)."""

import ctypes
import os

from yima_sdk import App, Context, Request

app = App()
IO_URING_SETUP = 425  # the same number on x86_64 and aarch64


@app.get("/ok")
async def ok(ctx: Context, request: Request) -> dict:
    return {"ok": True, "pid": os.getpid()}


@app.get("/attack")
async def attack(ctx: Context, request: Request) -> object:
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
    ring = libc.syscall(IO_URING_SETUP, 8, params)
    if ring < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"io_uring_setup: {os.strerror(errno)}")
    return {"ring": ring}
