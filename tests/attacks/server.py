"""A real `yima serve` process for attacks that need one: a free port, an operations port, stopped afterwards."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import REDIS_URL, free_port
from tests.test_cli import YIMA, _env, _wait_ready


@contextmanager
def yima_serve(database_url: str, master_key: str, data_dir: Path, **env: str) -> Iterator[tuple[str, int]]:
    """Serve in development mode (the document's dev routes exist, login codes are readable); `env` overrides."""
    port, metrics_port = free_port(), free_port()
    settings = {
        "YIMA_DATABASE_URL": database_url,
        "YIMA_REDIS_URL": REDIS_URL,
        "YIMA_REDIS_NAMESPACE": f"attack-{port}:",
        "YIMA_MODE": "development",
        "YIMA_MASTER_KEY": master_key,
        "YIMA_DATA_DIR": str(data_dir),
        "YIMA_METRICS_PORT": str(metrics_port),
        **env,
    }
    log_path = data_dir / "yima-serve.log"
    with log_path.open("wb") as log:  # a file, not a pipe: a busy server must never block on a full pipe
        proc = subprocess.Popen(
            [YIMA, "serve", "--allow-development", "--port", str(port)],
            env=_env(**settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            try:
                _wait_ready(url, proc)
            except AssertionError:
                raise AssertionError(log_path.read_text(errors="replace")[-4000:]) from None
            yield url, metrics_port
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
