"""Hostile mini-app: each route tries one thing the production sandbox refuses, and answers what happened."""

import os
import socket

from yima_sdk import App, Context, Request

app = App()


def _attempt(action: object) -> dict:
    try:
        return {"refused": False, "got": repr(action())[:80]}  # type: ignore[operator]
    except OSError as exc:
        return {"refused": True, "error": type(exc).__name__}


def _read_outside() -> str:
    with open("/etc/hostname") as f:
        return f.read()


@app.get("/read")
async def read(ctx: Context, request: Request) -> dict:
    return _attempt(_read_outside)


@app.get("/socket")
async def open_socket(ctx: Context, request: Request) -> dict:
    return _attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))


@app.get("/ids")
async def ids(ctx: Context, request: Request) -> dict:
    return {
        "uids": list(os.getresuid()),
        "groups": os.getgroups(),
        "print": print("hostile app printed") is None,
    }
