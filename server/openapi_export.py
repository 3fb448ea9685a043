"""Export the OpenAPI document deterministically, so a test can say when it drifts from the app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from server.app import create_app
from server.settings import Mode, load_settings


def openapi_document() -> dict[str, Any]:
    # Development mode so the dev-only routes are documented too (marked by their "dev" tag).
    app = create_app(load_settings({}, mode=Mode.DEVELOPMENT.value))
    return app.openapi_schema.to_schema()


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_openapi(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    return path
