"""Hostile mini-app, as reviewed: harmless. The test ships bytecode beside it (`__pycache__/app.*.pyc` with an
unchecked hash, and a sourceless `extra.pyc`) that would run in place of this source."""

from yima_sdk import App, Context, Request

app = App()


@app.get("/ok")
async def ok(ctx: Context, request: Request) -> dict:
    return {"reviewed": True}


@app.get("/extra")
async def extra(ctx: Context, request: Request) -> dict:
    import extra  # only a sourceless extra.pyc exists: the reviewer saw no such module

    return {"extra": extra.VALUE}
