"""An App's routing: the first registered route that fits a request answers it, whether its path has parameters
or not (paths without parameters are found by one look-up; the answer must be the one trying routes in turn
gives)."""

from __future__ import annotations

import json
from typing import Any

from yima_sdk import App, Context, Request


def _books() -> App:
    app = App()

    @app.get("/books/{id}")
    async def book(ctx: Context, request: Request) -> dict[str, Any]:
        return {"book": request.path_params["id"]}

    @app.get("/books/new")  # registered after /books/{id}, which answers GET /books/new first
    async def form(ctx: Context, request: Request) -> dict[str, Any]:
        return {"form": True}

    @app.post("/books/new")
    async def create(ctx: Context, request: Request) -> dict[str, Any]:
        return {"created": True, "params": request.path_params}

    @app.get("/shelf")
    async def shelf(ctx: Context, request: Request) -> dict[str, Any]:
        return {"shelf": 1}

    @app.get("/shelf")  # the same route again: the first one answers
    async def shelf_again(ctx: Context, request: Request) -> dict[str, Any]:
        return {"shelf": 2}

    return app


async def _answer(app: App, method: str, path: str) -> tuple[int, Any]:
    ctx = Context.__new__(Context)  # the handlers above touch nothing on it
    response = await app.handle(ctx, Request(method=method, path=path))
    return response.status, json.loads(response.body) if response.body else None


async def test_the_first_registered_route_answers_with_or_without_parameters() -> None:
    app = _books()
    assert await _answer(app, "GET", "/books/new") == (200, {"book": "new"})
    assert await _answer(app, "get", "/books/7") == (200, {"book": "7"})
    assert await _answer(app, "POST", "/books/new") == (200, {"created": True, "params": {}})
    assert await _answer(app, "GET", "/shelf") == (200, {"shelf": 1})
    assert (await _answer(app, "DELETE", "/shelf"))[0] == 405
    assert (await _answer(app, "GET", "/shelf/"))[0] == 404
