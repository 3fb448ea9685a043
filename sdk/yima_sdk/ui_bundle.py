"""The rules for an app's `ui/` page bundle, shared by `yima-sdk pack` and the server's upload checks.

A bundle is static files only (HTML, scripts, styles, images, fonts, JSON), served by the core at
`/miniapps/{id}/ui/` under a strict Content-Security-Policy. Each broken rule has a stable code; `yima-sdk pack`
raises `PackError` with it and the server's upload report names the same code as the failed check:

    ui.file_type    a file whose type a page bundle may not carry (e.g. .py, .exe, .wasm)
    ui.file_size    one file over UI_MAX_FILE_BYTES
    ui.total_size   the bundle over UI_MAX_TOTAL_BYTES
    ui.file_count   more than UI_MAX_FILES files
    ui.no_index     a ui/ folder without ui/index.html, the page the shell opens
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePosixPath

__all__ = [
    "UI_FOLDER",
    "UI_MAX_FILES",
    "UI_MAX_FILE_BYTES",
    "UI_MAX_TOTAL_BYTES",
    "UI_MEDIA_TYPES",
    "UiProblem",
    "inline_code",
    "page_headers",
    "page_policy",
    "ui_problems",
]

UI_FOLDER = "ui/"
UI_MAX_TOTAL_BYTES = 2 * 1024 * 1024
UI_MAX_FILE_BYTES = 512 * 1024
UI_MAX_FILES = 200

UI_MEDIA_TYPES: Mapping[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
}
"""The file types a bundle may carry, by lower-case suffix, and the type the core serves each with (never sniffed)."""


GATEWAY_PATH = "/v1/miniapps/{app_id}/api/"
YIMA_JS = "/static/yima.js"


def page_policy(origin: str, app_id: str) -> str:
    """The Content-Security-Policy of an app's page files, as the core and `yima-sdk dev` serve them.

    `sandbox allow-scripts` gives the page an opaque origin even when it is opened on its own, outside the shell's
    iframe: it never reads the core's storage or cookies. Sources are absolute (an opaque origin has no 'self' to
    speak of) and narrowed to paths: scripts from `/static/yima.js` and the app's own folder, connections to the
    app's own gateway only."""
    own = f"{origin}/miniapps/{app_id}/"
    gateway = origin + GATEWAY_PATH.format(app_id=app_id)
    return (
        f"default-src 'none'; script-src {origin}{YIMA_JS} {own}; style-src {own}; img-src {own} data: blob:; "
        f"font-src {own}; media-src {own} blob:; connect-src {gateway}; frame-ancestors 'self'; "
        "base-uri 'none'; form-action 'none'; object-src 'none'; sandbox allow-scripts"
    )


def page_headers(origin: str, app_id: str) -> dict[str, str]:
    """Every header a page file is served with (besides its type and ETag)."""
    return {
        "content-security-policy": page_policy(origin, app_id),
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "permissions-policy": "camera=(), geolocation=(), microphone=(), payment=()",
        # The page's origin is opaque, so its fonts and module scripts are cross-origin requests; the files are
        # public and carry no credential.
        "access-control-allow-origin": "*",
        # Revalidated (ETag) on every load, so a release reaches phones at once; private, because the policy names
        # the origin the request came to, and a shared cache must not hand one Host's policy to another.
        "cache-control": "private, no-cache",
    }


@dataclass(frozen=True)
class UiProblem:
    code: str
    detail: str


def ui_problems(sizes: Mapping[str, int]) -> list[UiProblem]:
    """Every rule the `ui/` files among `sizes` (archive path -> bytes) break; empty when there is no ui/."""
    ui = {name: size for name, size in sizes.items() if name.startswith(UI_FOLDER)}
    if not ui:
        return []
    problems = []
    foreign = sorted(n for n in ui if PurePosixPath(n).suffix.lower() not in UI_MEDIA_TYPES)
    if foreign:
        allowed = " ".join(sorted(UI_MEDIA_TYPES))
        problems.append(
            UiProblem("ui.file_type", f"{', '.join(foreign[:5])}: a page bundle holds only {allowed}")
        )
    big = sorted(n for n, size in ui.items() if size > UI_MAX_FILE_BYTES)
    if big:
        problems.append(
            UiProblem("ui.file_size", f"{', '.join(big[:5])}: over {UI_MAX_FILE_BYTES} bytes per file")
        )
    total = sum(ui.values())
    if total > UI_MAX_TOTAL_BYTES:
        problems.append(UiProblem("ui.total_size", f"ui/ holds {total} bytes (limit {UI_MAX_TOTAL_BYTES})"))
    if len(ui) > UI_MAX_FILES:
        problems.append(UiProblem("ui.file_count", f"ui/ holds {len(ui)} files (limit {UI_MAX_FILES})"))
    if "ui/index.html" not in ui:
        problems.append(UiProblem("ui.no_index", "ui/index.html is missing: it is the page the shell opens"))
    return problems


class _InlineFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name.lower(): value or "" for name, value in attrs}
        line = self.getpos()[0]
        if tag == "script":
            self._in_script = "src" not in names
        if tag == "style":
            self.found.append(f"line {line}: inline <style>")
        elif "style" in names:
            self.found.append(f"line {line}: style attribute on <{tag}>")
        for name, value in names.items():
            if name.startswith("on"):
                self.found.append(f"line {line}: event handler attribute {name}=")
            elif name in ("href", "src", "action") and value.strip().lower().startswith("javascript:"):
                self.found.append(f"line {line}: javascript: URL in {name}=")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.found.append(f"line {self.getpos()[0]}: inline <script>")
            self._in_script = False


def inline_code(html: str) -> list[str]:
    """What in a page the page policy will refuse to run or apply: inline scripts, event handler attributes,
    `javascript:` URLs and inline styles (`yima-sdk check` reports each; move it into a file of the bundle)."""
    finder = _InlineFinder()
    finder.feed(html)
    finder.close()
    return finder.found
