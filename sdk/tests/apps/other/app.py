"""Test app that declares only `user` and `log`: storage is refused, scopes are not declared."""

from yima_sdk import App, Context, Request, YimaError

app = App()


@app.get("/whoami")
async def whoami(ctx: Context, request: Request) -> dict:
    return {"id": await ctx.user.id()}


@app.get("/store")
async def store(ctx: Context, request: Request) -> dict:
    try:
        await ctx.storage.put("k", 1)
    except YimaError as exc:
        return {"error": exc.code}
    return {"error": None}


@app.get("/scope")
async def scope(ctx: Context, request: Request) -> dict:
    try:
        return {"value": await ctx.user.scope("birth_date")}
    except YimaError as exc:
        return {"error": exc.code}
