"""Bad input to the bus app: every route that reads a JSON body answers a body that is not JSON, or not the
right JSON, with a 4xx and a stable code, never a server error (a staff member's broken upload is their mistake
to fix, not the app's failure)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bus_days import to_wednesday_10
from yima_sdk.testing import MiniApp

APP_FOLDER = Path(__file__).resolve().parents[1]
BODIES = [b"version=2", b"", b'{"version": 2', b"\xff\xfe", b"null", b"[1, 2]", b'"text"', b"{}"]
ROLES = ("fares", "concessions")


def body_routes() -> list[tuple[str, str]]:
    """Every POST, PUT or DELETE route the app's modules register, with its path parameters filled in."""
    found = []
    for module in sorted(APP_FOLDER.glob("*.py")):
        for method, path in re.findall(r'@app\.(post|put|delete)\("([^"]+)"\)', module.read_text()):
            found.append((method.upper(), re.sub(r"\{\w+\}", "nope", path.replace("{version}", "2"))))
    return found


def test_the_route_list_is_the_apps() -> None:
    assert ("PUT", "/fares/tables/2") in body_routes() and ("POST", "/concessions/grants") in body_routes()


@pytest.mark.parametrize(("method", "path"), body_routes())
def test_a_malformed_json_body_is_a_4xx_with_a_stable_code(miniapp: MiniApp, method: str, path: str) -> None:
    to_wednesday_10(miniapp)
    for role in ROLES:
        miniapp.grant_staff("carol", role)
    for body in BODIES:
        r = miniapp.request(
            method, path, user="carol", body=body, headers={"content-type": "application/json"}
        )
        assert 400 <= r.status < 500, (body, r.status, r.body)
        code = r.json()["code"]
        assert re.fullmatch(r"(bus|request)\.[a-z_]+", code), (body, code)
        if path.startswith("/fares/tables/"):
            assert code == "bus.bad_fare_table", (body, r.json())
