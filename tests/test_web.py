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


async def test_an_unchanged_file_is_revalidated_with_304_and_sent_again_when_changed(
    client: AppClient,
) -> None:
    first = await client.get("/static/base.css", headers={"accept-encoding": "gzip"})
    etag = first.headers["etag"]
    assert first.status_code == 200 and first.content

    again = await client.get("/static/base.css", headers={"if-none-match": etag, "accept-encoding": "gzip"})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag and "no-cache" in again.headers["cache-control"]
    assert "content-security-policy" in again.headers
    # one of several tags, weakly compared (a proxy may have marked it W/)
    listed = await client.get("/static/base.css", headers={"if-none-match": f'"other", W/{etag}'})
    assert listed.status_code == 304 and listed.content == b""

    # a tag the file no longer has (it changed since): the whole file again
    stale = await client.get("/static/base.css", headers={"if-none-match": '"1-2-3"'})
    assert stale.status_code == 200 and stale.content == first.content
