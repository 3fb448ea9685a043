"""What a mini-app answers, as opposed to what it asks (the capability contract, `yima_sdk.contract`, which
re-exports every name here): the headers a route's Response may carry to the resident, and the display lines
and verdict a scan handler may reply to a terminal. The gateway, the platform's scan events and the simulator
all pass an app's answers through these functions, so an answer is refused or trimmed the same way everywhere.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec

from yima_sdk.errors import BadScanReply

__all__ = [
    "ANSWER_TYPES",
    "BYTES_TYPE",
    "MAX_LINE",
    "MAX_LINES",
    "MAX_PRIVATE_AGE_S",
    "ScanReply",
    "answer_headers",
    "check_filename",
    "scan_lines",
    "scan_reply",
]

MAX_LINES, MAX_LINE = 4, 40


class ScanReply(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a scan handler may answer besides None: display lines for the terminal. Unknown fields are refused:
    a reply the terminal cannot show must be an error the developer sees, not silently nothing."""

    lines: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=MAX_LINE)]], msgspec.Meta(max_length=MAX_LINES)
    ] = []
    admit: bool | None = None
    """The app's own verdict where the terminal guards an entry (a gate scanning a ticket): False keeps the
    gate shut although the code or pass itself was accepted; None says nothing."""


def scan_reply(value: Any) -> ScanReply:
    """A scan handler's answer as a `ScanReply` (None is an empty one); BadScanReply as `scan_lines`."""
    if value is None:
        return ScanReply()
    try:
        return msgspec.convert(value, ScanReply)
    except msgspec.ValidationError as exc:
        raise BadScanReply(
            f'a scan handler answers None or {{"lines": [...], "admit": true|false}} ({MAX_LINES} lines of '
            f"{MAX_LINE} characters at most), not {type(value).__name__}: {exc}"
        ) from None


def scan_lines(value: Any) -> list[str]:
    """The display lines of a scan handler's answer: None, or `{"lines": [...]}` with at most 4 strings of at
    most 40 characters. Anything else raises BadScanReply saying what is wrong (the simulator shows it to the
    developer; the platform marks the app's part missing with this code and logs it)."""
    if value is None:
        return []
    try:
        return list(msgspec.convert(value, ScanReply).lines)
    except msgspec.ValidationError as exc:
        raise BadScanReply(
            f'a scan handler answers None or {{"lines": [...]}} ({MAX_LINES} lines of {MAX_LINE} characters '
            f"at most), not {type(value).__name__}: {exc}"
        ) from None


# ---- answers: what a route's Response may carry to the resident --------------------------------------------

# Answers come from the API origin, where a text/html or SVG answer would run as the platform's own page: an app
# answers JSON, CSV or opaque bytes, never sniffed (its pages live under /miniapps/{id}/ui/ with their own CSP).
# The gateway and the simulator both pass an app's headers through `answer_headers`.
ANSWER_TYPES = {
    "application/json": "application/json",
    "application/problem+json": "application/problem+json",
    "text/csv": "text/csv; charset=utf-8",
}
"""The media types an app may answer, as the resident receives them; any other is `application/octet-stream`."""
BYTES_TYPE = "application/octet-stream"
_RETURNED_HEADERS = frozenset(
    {"content-type", "cache-control", "etag", "allow", "content-language", "content-disposition"}
)
_CACHE_DIRECTIVES = frozenset({"no-cache", "no-store", "must-revalidate"})
MAX_PRIVATE_AGE_S = 86_400
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_DISPOSITION = re.compile(r'attachment; ?filename="([^"]*)"')


def check_filename(name: str, suffix: str = "") -> str:
    """A download's file name: ASCII letters, digits and `._-`, 1-100 characters, ending with `suffix`."""
    if not _FILENAME.fullmatch(name) or not name.endswith(suffix):
        raise ValueError(f"a file name is 1-100 of A-Z a-z 0-9 . _ - ending {suffix!r}, not {name!r}")
    return name


def answer_headers(app_headers: dict[str, str]) -> dict[str, str]:
    """The app's headers as the resident receives them: only content-type (one of ANSWER_TYPES, else bytes),
    cache-control, etag, allow, content-language and an `attachment; filename="..."` disposition with a plain
    file name; values with control or non-ASCII characters dropped (no header injection); always nosniff; and,
    as every answer is per resident, `private` caching with at most a day's max-age (`private, no-store` when
    the app says nothing)."""
    out = {
        k.lower(): v
        for k, v in app_headers.items()
        if k.lower() in _RETURNED_HEADERS and v.isprintable() and v.isascii()
    }
    media = out.get("content-type", "").split(";", 1)[0].strip().lower()
    out["content-type"] = ANSWER_TYPES.get(media, BYTES_TYPE)
    if "content-disposition" in out:
        found = _DISPOSITION.fullmatch(out.pop("content-disposition").strip())
        if found and _FILENAME.fullmatch(found.group(1)):
            out["content-disposition"] = f'attachment; filename="{found.group(1)}"'
    out["x-content-type-options"] = "nosniff"
    out["cache-control"] = _private_cache_control(out.get("cache-control", ""))
    return out


def _private_cache_control(asked: str) -> str:
    """`private` plus what the app asked that a private cache may honour; `no-store` when it asked nothing."""
    kept: list[str] = []
    for part in asked.split(","):
        name, _, value = part.strip().partition("=")
        name = name.strip().lower()
        if name in _CACHE_DIRECTIVES:
            kept.append(name)
        elif name == "max-age" and value.strip().isdigit():
            kept.append(f"max-age={min(int(value), MAX_PRIVATE_AGE_S)}")
    return ", ".join(["private", *dict.fromkeys(kept or ["no-store"])])
