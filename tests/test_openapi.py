"""The committed openapi/openapi.json is what the app serves; regenerate with `yima openapi`."""

from __future__ import annotations

from pathlib import Path

from server.openapi_export import render


def test_committed_openapi_matches_the_app(repo_root):
    committed = Path(repo_root, "openapi", "openapi.json").read_text(encoding="utf-8")
    assert committed == render(), (
        "openapi/openapi.json drifted from the app: run `yima openapi` and commit it"
    )
