"""An app cannot serve a page or a shared-cacheable answer on the API origin through the gateway."""

from __future__ import annotations

from pathlib import Path

from tests.platform.conftest import Team, call, login, new_app_id, write_probe

HTML_PAGE = '''

@app.get("/page")
async def page(ctx: Context, request: Request) -> Response:
    """Hostile: an HTML page with a script, cacheable by every proxy for a year."""
    return Response(
        headers={
            "content-type": "text/html; charset=utf-8",
            "cache-control": "public, max-age=31536000, immutable",
            "etag": "x\\r\\nset-cookie: session=stolen",
        },
        body=b"<script>fetch('/v1/me')</script>",
    )


@app.get("/cached")
async def cached(ctx: Context, request: Request) -> Response:
    return Response(
        headers={"content-type": "application/json; charset=utf-8", "cache-control": "max-age=600, s-maxage=600"},
        body=b"{}",
    )
'''


async def test_html_and_public_caching_from_an_app_are_neutralised(team: Team, tmp_path: Path) -> None:
    folder = write_probe(tmp_path, new_app_id())
    (folder / "app.py").write_text((folder / "app.py").read_text() + HTML_PAGE)
    app_id, _ = await team.ship(folder)
    resident = await login(team.client)
    r = await call(team.client, resident, app_id, "GET", "/page")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "private, max-age=86400"  # `public` dropped, the age capped
    assert "etag" not in r.headers and "set-cookie" not in r.headers
    r = await call(team.client, resident, app_id, "GET", "/cached")
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "private, max-age=600"
    # an ordinary JSON answer is private and unstored too
    r = await call(team.client, resident, app_id, "GET", "/whoami")
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "private, no-store"
