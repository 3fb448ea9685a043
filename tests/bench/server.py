"""`yima_serve()`: a real `yima serve` on a fresh database for benchmarks that drive it with their own client.

Built on tests/bench/_harness.py (the same database, environment and process handling the wrk benchmarks use).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

from server.security.master_key import new_master_key_text
from tests.bench._harness import create_database, drop_database, free_port, run, running_server, server_env


@dataclass
class RunningServer:
    host: str
    port: int
    database_url: str
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextlib.contextmanager
def yima_serve(workers: int = 2, **extra_env: str) -> Iterator[RunningServer]:
    name, database_url = run(create_database())
    try:
        port = free_port()
        env = server_env(database_url, new_master_key_text(), port, f"bench-{secrets.token_hex(3)}:")
        # Login benchmarks hammer the OTP route: lift its abuse limits, keep the dev outbox.
        env.update(
            YIMA_MODE="development",
            YIMA_OTP_PER_PHONE_PER_HOUR="1000000",
            YIMA_OTP_PER_ADDRESS_PER_HOUR="1000000",
            **extra_env,
        )
        with running_server(env, workers):
            yield RunningServer("127.0.0.1", port, database_url, env)
    finally:
        run(drop_database(name))
