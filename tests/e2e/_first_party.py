"""The `yima dev` with the first-party apps that the medical and medicine e2e modules start, once per module: its
own embedded database, the demo operator signed in, and the apps' seed jobs waited for where a module needs them."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from server.seed import DEMO_OPERATOR_PHONE
from tests.e2e._real import (
    RealServer,
    eventually,
    private_folder,
    real_server,
    server_env,
    sign_in,
    verified_resident,
)


@dataclass
class Dev:
    server: RealServer
    operator: httpx.Client


@contextlib.contextmanager
def first_party_dev(*seeded: tuple[str, str, str]) -> Iterator[Dev]:
    """`seeded`: (path, list key, a name in it) per app whose seed job must have run before the tests start."""
    with private_folder() as folder:
        env = server_env("", folder / "data", redis=False, YIMA_DEV_FIRST_PARTY="1")
        with real_server("dev", env=env) as server:
            if seeded:
                resident = verified_resident(server)

                def ready() -> bool:
                    for path, key, name in seeded:
                        r = resident.get(path)
                        if (
                            r.status_code == 429
                        ):  # the resident's request quota on a slow start: ask less often
                            time.sleep(1)
                            return False
                        assert r.status_code == 200, r.text + server.output()[-3000:]
                        if name not in {i["name"] for i in r.json()[key]}:
                            return False
                    return True

                eventually(ready, limit_s=120)
            yield Dev(server, sign_in(server, DEMO_OPERATOR_PHONE))
