"""One JSON-over-HTTP call to the yima API with the standard library; problem+json answers become YimaErrors."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import msgspec

from yima_sdk.errors import YimaError


def check_api(api: str, error: type[YimaError], prefix: str) -> str:
    """`api` without a trailing slash, or `error` with code `<prefix>.bad_api` if it is not an http(s) URL."""
    if not api.startswith(("http://", "https://")):
        raise error(f"the API must be an http(s) URL, not {api!r}", code=f"{prefix}.bad_api")
    return api.rstrip("/")


def call(
    url: str,
    *,
    data: bytes,
    content_type: str,
    error: type[YimaError],
    prefix: str,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> bytes:
    """POST `data` to `url` (checked by `check_api`) and return the body of a 2xx answer.

    A problem+json answer raises `error` with the API's own code; an unreachable API raises `<prefix>.unreachable`.
    """
    request = urllib.request.Request(  # noqa: S310  (http(s) URL, checked by check_api)
        url,
        data=data,
        method="POST",
        headers={
            "content-type": content_type,
            "accept": "application/json",
            "user-agent": "yima-sdk",
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return answer.read()  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:
        raise _problem(exc.code, exc.read(), error) from None
    except (urllib.error.URLError, OSError) as exc:
        raise error(f"cannot reach {url}: {exc}", code=f"{prefix}.unreachable") from None


def _problem(status: int, body: bytes, error: type[YimaError]) -> YimaError:
    try:
        problem: Any = msgspec.json.decode(body)
    except msgspec.DecodeError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    code = str(problem.get("code") or f"http.{status}")
    detail = str(problem.get("detail") or problem.get("title") or body[:200].decode("utf-8", "replace"))
    return error(f"HTTP {status}: {detail}", code=code)
