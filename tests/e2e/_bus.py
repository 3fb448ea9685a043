"""The bus app's riders and terminals for end-to-end tests through `yima dev`: residents with one-cards, bus
terminals scanning online and terminals on the terminal SDK scanning offline, on the server's clock (which
libfaketime may have moved; tests/e2e/test_real_bus_caps_days.py)."""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from yima_sdk.terminal import Terminal, TerminalCredentials

from server.seed import DEMO_OPERATOR_PHONE
from tests.conftest import valid_id_number
from tests.credentials.helpers import client_assertion, public_key_b64, token_form
from tests.e2e._real import (
    RealServer,
    UploadsFourTimesAtOnce,
    eventually,
    fresh_database,
    private_folder,
    real_server,
    server_env,
    sign_in,
    verified_resident,
)
from tests.e2e.test_real_bus import top_up
from tests.onecard.helpers import card_number

APP = "gov.guangde.bus"
API = f"/v1/miniapps/{APP}/api"
COUNTY_TIME = dt.timezone(dt.timedelta(hours=8))


@contextlib.contextmanager
def seeded_dev() -> Iterator[tuple[RealServer, httpx.Client, str]]:
    """`yima dev` with the first-party apps on a fresh database, once the bus app's seed job has run: the server,
    the demo operator signed in, and the database's DSN."""
    with private_folder() as folder, fresh_database() as dsn:
        env = server_env(dsn, folder / "data", redis=False, YIMA_DEV_FIRST_PARTY="1")
        with real_server("dev", env=env) as server:
            operator = sign_in(server, DEMO_OPERATOR_PHONE)
            watcher = verified_resident(server)
            eventually(lambda: watcher.get(f"{API}/lines").status_code == 200, limit_s=60)  # seeded
            yield server, operator, dsn


@dataclass
class Dev:
    server: RealServer
    operator: httpx.Client
    folder: Path
    offset: float = 0.0
    """The server's clock less the real one (libfaketime's move)."""
    month_ends: float | None = None
    """When the moved clock reaches the month's end (county midnight); None on the real clock."""

    def now(self) -> float:
        return time.time() + self.offset

    def staff(self, role: str) -> httpx.Client:
        """A resident the operator grants `role` of the bus app."""
        clerk = verified_resident(self.server)
        body = {"account_id": clerk.get("/v1/me").json()["id"], "role": role, "unit": None}
        r = self.operator.post(f"/v1/miniapps/{APP}/staff", json=body)
        assert r.status_code == 201, r.text
        return clerk


def online_terminal(dev: Dev, line: str) -> httpx.Client:
    """A bus terminal of `line` scanning online, signed in with its key, its assertion stamped by the server's
    time (as a terminal whose clock is synced)."""
    key = Ed25519PrivateKey.generate()
    body = {"name": f"{line}路 online", "kind": "bus", "scene": APP, "unit": f"line:{line}",
            "public_key": public_key_b64(key)}  # fmt: skip
    r = dev.operator.post("/v1/admin/terminals", json=body)
    assert r.status_code == 201, r.text
    now = dev.now()
    assertion = client_assertion(r.json()["id"], key, aud=f"{dev.server.url}/v1/terminal/token", iat=int(now),
                                 exp=int(now + 60))  # fmt: skip
    terminal = httpx.Client(base_url=dev.server.url, timeout=30)
    r = terminal.post("/v1/terminal/token", data=token_form(assertion))
    assert r.status_code == 200, r.text
    terminal.headers["authorization"] = f"Bearer {r.json()['access_token']}"
    return terminal


def riders_with_cards(dev: Dev, births: list[dt.date]) -> list[httpx.Client]:
    """Verified residents born on `births`, each with a one-card (imported in one go, linked), topped up, who
    opened the bus app."""

    def verified(born: dt.date) -> tuple[httpx.Client, str]:
        resident = sign_in(dev.server)
        for _ in range(5):  # a random sequence number may be taken already
            number = valid_id_number(birth=born.strftime("%Y%m%d"), seq=f"{secrets.randbelow(1000):03d}")
            r = resident.put("/v1/me/identity", json={"name": "王乘客", "id_number": number})
            if r.status_code != 409:
                break
        assert r.status_code == 200, r.text
        return resident, number

    def carded(resident: httpx.Client, card: str) -> httpx.Client:
        r = resident.post("/v1/me/onecard", json={"ss_card_number": card})
        assert r.status_code == 200, r.text
        top_up(resident, 5000)
        assert resident.get(f"{API}/me").status_code == 200  # they use the app
        return resident

    with ThreadPoolExecutor(4) as pool:
        residents = list(pool.map(verified, births))
        cards = [card_number() for _ in residents]
        listed = dev.folder / f"cards-{secrets.token_hex(4)}.csv"
        listed.write_text(
            "".join(f"{number},{card}\n" for (_, number), card in zip(residents, cards, strict=True))
        )
        done = dev.server.yima("onecard", "import-cards", str(listed))
        assert done.returncode == 0, done.stderr
        return list(pool.map(carded, [resident for resident, _ in residents], cards))


class HeldClock:
    """A terminal's clock read once per boarding: the offline scan and its online twin carry the same instant."""

    def __init__(self) -> None:
        self.held: float | None = None

    def __call__(self) -> float:
        return time.time() if self.held is None else self.held

    @contextlib.contextmanager
    def hold(self) -> Iterator[float]:
        """Read the clock once: until the block ends it answers that instant."""
        self.held = time.time()
        try:
            yield self.held
        finally:
            self.held = None


def offline_terminal(dev: Dev, line: str, roots: dict[str, bytes], path: Path, clock: HeldClock) -> Terminal:
    key = Ed25519PrivateKey.generate()
    body = {"name": f"{line}路 offline", "kind": "bus", "scene": APP, "unit": f"line:{line}",
            "public_key": public_key_b64(key)}  # fmt: skip
    r = dev.operator.post("/v1/admin/terminals", json=body)
    assert r.status_code == 201, r.text
    registered = r.json()
    transport = UploadsFourTimesAtOnce(
        dev.server.url,
        TerminalCredentials(registered["id"], key),
        token_endpoint=registered["token_endpoint"],
    )
    terminal = Terminal(root_public_keys=roots, db_path=str(path), clock=clock, clock_source="ntp",
                        transport=transport, app_id=APP)  # fmt: skip
    terminal.refresh()
    return terminal


def balance(rider: httpx.Client) -> int:
    return int(rider.get("/v1/me/onecard").json()["balance_fen"])


def confirm_all(rider: httpx.Client) -> None:
    """The online rider confirms each fare the bus app asked in the shell."""
    for payment in rider.get("/v1/me/payments").json():
        if payment["app_id"] == APP and payment["status"] == "pending_confirmation":
            r = rider.post(f"/v1/me/payments/{str(payment['id']).removeprefix('pay_')}/confirm")
            assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
