"""Hostile mini-app: looks into the interpreter's installed packages (which ones, which versions, their code)
to plan an attack on the server's dependencies."""

import os

from yima_sdk import App, Context, Request

app = App()


@app.get("/ok")
async def ok(ctx: Context, request: Request) -> dict:
    return {"ok": True, "pid": os.getpid()}


@app.get("/attack")
async def attack(ctx: Context, request: Request) -> object:
    path = request.query["path"]
    if request.query.get("how") == "stat":
        return {"size": os.stat(path).st_size}
    if request.query.get("how") == "list":
        return {"names": sorted(os.listdir(path))}
    with open(path, "rb") as file:  # noqa: ASYNC230
        return {"head": file.read(64).hex()}


@app.get("/msgspec")
async def msgspec_still_works(ctx: Context, request: Request) -> dict:
    import json  # a stdlib module imported after the layers are in force

    import msgspec

    return {"json": json.dumps(msgspec.json.decode(b"[1]"))}
