"""The web surfaces' files: served from the core under a policy that lets a page reach only this origin."""

from __future__ import annotations

from tests.conftest import AppClient


async def test_shared_assets_come_with_a_policy_that_allows_only_this_origin(client: AppClient) -> None:
    css = await client.get("/static/base.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    policy = css.headers["content-security-policy"]
    assert (
        "default-src 'none'" in policy
        and "script-src 'self';" in policy
        and "frame-ancestors 'none'" in policy
    )
    assert "http" not in policy and "*" not in policy and "unsafe" not in policy
    assert css.headers["x-content-type-options"] == "nosniff"
    assert "no-cache" in css.headers["cache-control"]


async def test_nothing_outside_the_web_folders_is_served(client: AppClient) -> None:
    for path in (
        "/static/../plugin.py",
        "/static/%2e%2e/plugin.py",
        "/static/..%2fapp.py",
        "/static/missing.js",
    ):
        answer = await client.get(path)
        assert answer.status_code == 404, path
