"""`yima-sdk publish`: upload a packed app to the developer API with a developer token (headless, for CI).

    POST {api}/v1/developer/apps/{app_id}/versions
    Authorization: Bearer ydt_...        content-type: application/zip        body: the archive

An upload needs an approved registration of the app id: `register` asks for one,

    POST {api}/v1/developer/app-ids      {"app_id": "com.example.clinic"}

and an operator approves it; until then uploads answer 403 `app_id.not_registered` (or `app_id.outside_namespace`
for an id outside the developer's organisation's namespaces), and nothing is stored.
201 (new) or 200 (the same version and digest again) answer {"app_id", "version", "digest", "status",
"checks": [{"name", "ok", "detail"}]}; `status` is "in_review" or "checks_failed". Errors are problem+json with a
stable `code` (`registry.not_owner`, `registry.version_exists`...), raised here as PublishError with that code.
"""

from __future__ import annotations

import msgspec

from yima_sdk._http import call, check_api
from yima_sdk.errors import PublishError
from yima_sdk.pack import Package

__all__ = ["Check", "Registration", "UploadResult", "format_report", "register", "upload"]

TOKEN_ENV = "YIMA_DEVELOPER_TOKEN"  # noqa: S105  (the variable's name, not a token)
API_ENV = "YIMA_API"
DEFAULT_API = "http://127.0.0.1:8000"


class Check(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    ok: bool
    detail: str = ""


class UploadResult(msgspec.Struct, frozen=True, kw_only=True):
    """The platform's answer to an upload. Unknown fields are accepted: the API appends fields."""

    app_id: str
    version: str
    digest: str
    status: str
    checks: list[Check] = []

    @property
    def ok(self) -> bool:
        return self.status != "checks_failed" and all(check.ok for check in self.checks)


def upload(package: Package, *, api: str, token: str, timeout: float = 60.0) -> UploadResult:
    """Upload the archive; PublishError (with the API's code) when the API refuses it or cannot be reached."""
    if not token:
        raise PublishError(
            f"no developer token: run `yima-sdk login`, pass --token or set {TOKEN_ENV}",
            code="publish.no_token",
        )
    url = f"{check_api(api, PublishError, 'publish')}/v1/developer/apps/{package.manifest.id}/versions"
    body = call(
        url,
        data=package.data,
        content_type="application/zip",
        headers={"authorization": f"Bearer {token}"},
        error=PublishError,
        prefix="publish",
        timeout=timeout,
    )
    try:
        return msgspec.json.decode(body, type=UploadResult)
    except msgspec.DecodeError as exc:
        raise PublishError(f"unexpected answer from {url}: {exc}", code="publish.bad_answer") from None


class Registration(msgspec.Struct, frozen=True, kw_only=True):
    """An app id registration as the platform holds it. Unknown fields are accepted: the API appends fields."""

    app_id: str
    org_name: str
    status: str
    """"pending" until an operator decides, then "approved" or "rejected" (with `reason`)."""
    reason: str = ""


def register(app_id: str, *, api: str, token: str, timeout: float = 30.0) -> Registration:
    """Request `app_id` for the developer's organisation; asking again answers the registration as it stands."""
    if not token:
        raise PublishError(
            f"no developer token: run `yima-sdk login`, pass --token or set {TOKEN_ENV}",
            code="publish.no_token",
        )
    url = f"{check_api(api, PublishError, 'publish')}/v1/developer/app-ids"
    body = call(
        url,
        data=msgspec.json.encode({"app_id": app_id}),
        content_type="application/json",
        headers={"authorization": f"Bearer {token}"},
        error=PublishError,
        prefix="publish",
        timeout=timeout,
    )
    try:
        return msgspec.json.decode(body, type=Registration)
    except msgspec.DecodeError as exc:
        raise PublishError(f"unexpected answer from {url}: {exc}", code="publish.bad_answer") from None


def format_report(result: UploadResult) -> str:
    """Human-readable report of an upload: one line per check, then the status."""
    lines = [f"{result.app_id} {result.version} {result.digest}"]
    for check in result.checks:
        mark = "ok  " if check.ok else "FAIL"
        lines.append(f"  {mark} {check.name}" + (f": {check.detail}" if check.detail else ""))
    lines.append(f"status: {result.status}")
    return "\n".join(lines)
