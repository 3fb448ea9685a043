"""The API docs page at /schema works on an intranet: the page and everything it loads come from this server."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from tests.conftest import AppClient

REFERENCE = re.compile(r"""(?:src|href|data-openapi)\s*=\s*["']([^"']+)["']""")


async def test_docs_page_loads_nothing_from_another_origin(client: AppClient) -> None:
    page = await client.get("/schema")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert (
        "http://" not in page.text
        and "https://" not in page.text
        and "//" not in page.text.replace("<!--", "")
    )
    references = REFERENCE.findall(page.text)
    assert len(references) == 5, references  # favicon, stylesheet, bundle, start-up script, the document
    for ref in references:
        parts = urlsplit(ref)
        assert not parts.scheme and not parts.netloc and ref.startswith("/"), ref
        loaded = await client.get(ref)
        assert loaded.status_code == 200, ref
    # the browser itself is told to fetch nothing from anywhere else
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self';" in policy
    assert "http" not in policy and "*" not in policy
    start = await client.get("/schema/assets/api-docs.js")
    assert "validatorUrl: null" in start.text  # Swagger UI's badge asks a public validator otherwise


async def test_the_cdn_pages_and_other_files_are_not_served(client: AppClient) -> None:
    for path in ("/schema/redoc", "/schema/swagger", "/schema/elements", "/schema/rapidoc", "/schema/scalar"):
        assert (await client.get(path)).status_code == 404, path
    for name in ("swagger-editor-bundle.js", "..%2F..%2Fcore.py", "LICENSE"):
        assert (await client.get(f"/schema/assets/{name}")).status_code == 404, name


async def test_the_docs_and_its_assets_are_not_api_operations(client: AppClient) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    assert not [path for path in document["paths"] if path.startswith("/schema")]
