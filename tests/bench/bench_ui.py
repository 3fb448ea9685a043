"""Mini-app page bundles: a 200 KiB `ui/` bundle served by the core at /miniapps/{id}/ui/ vs the same files served
by Litestar's own static files route, side by side in one run (target: >= 0.8x).

    .venv/bin/python tests/bench/bench_ui.py [--rounds 5] [--seconds 5] [--connections 16]

One server process (uvicorn, its default loop: uvloop; PostgreSQL, Redis): the yima app as `yima serve` builds it,
plus, for this benchmark only, `create_static_files_router` over the app folder's ui/ mounted on the same app
(so both routes pass the same middleware: request context, access control, metrics). The app is published with
the SDK, approved and released by an operator (tests/e2e/_real.py). wrk cycles through the bundle's five files,
interleaved rounds, medians.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from litestar import Litestar

from tests.bench._harness import ROOT, free_port, lua_round_robin, print_table, wrk

BUNDLE = {  # 200 KiB in all, in the proportions of a small page: markup, two scripts, styles, an image
    "index.html": 8 * 1024,
    "app.js": 96 * 1024,
    "vendor.js": 56 * 1024,
    "style.css": 24 * 1024,
    "logo.png": 16 * 1024,
}
FILES_ENV = "BENCH_UI_FILES"


def bench_app() -> Litestar:
    """uvicorn factory: the yima app plus Litestar's static files route over the bundle (benchmark only)."""
    from litestar.static_files import create_static_files_router

    from server.app import create_app
    from server.auth import allow
    from server.auth.guards import PUBLIC
    from server.settings import load_settings

    app = create_app(load_settings())
    app.register(
        create_static_files_router(
            path="/litestar-static", directories=[Path(os.environ[FILES_ENV])], opt=allow(PUBLIC)
        )
    )
    return app


def write_bundle(folder: Path) -> None:
    rng = random.Random(2026)
    (folder / "ui").mkdir()
    for name, size in BUNDLE.items():
        if name.endswith(".png"):  # an image does not compress
            content = bytes(rng.getrandbits(8) for _ in range(size))
        else:  # text: words from a small vocabulary, like code and markup
            words = ["const", "yima", "call", "return", "function", "div", "class", "=>", "{", "}", "\n"]
            text = " ".join(rng.choice(words) for _ in range(size))
            content = text.encode()[:size]
        (folder / "ui" / name).write_bytes(content)
    assert sum(p.stat().st_size for p in (folder / "ui").iterdir()) == 200 * 1024


def main() -> None:
    from tests.e2e._real import (
        RealServer,
        fresh_database,
        private_folder,
        release_app,
        server_env,
        sign_in,
    )
    from tests.platform.conftest import new_app_id, write_probe

    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    with private_folder("yima-bench-ui-") as folder, fresh_database() as dsn:
        app_folder = write_probe(folder / "src", new_app_id("bundle"))
        write_bundle(app_folder)
        port = free_port()
        env = server_env(dsn, folder / "data", redis=True, YIMA_LOG_LEVEL="WARNING")
        env[FILES_ENV] = str(app_folder / "ui")
        log = Path(tempfile.mkstemp(prefix="bench-ui-", suffix=".log")[1])
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "tests.bench.bench_ui:bench_app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=out,
            )
        server = RealServer(f"http://127.0.0.1:{port}", proc, env, log)
        try:
            deadline = time.time() + 120
            while True:
                try:
                    with urllib.request.urlopen(server.url + "/health", timeout=1):
                        break
                except OSError:
                    if proc.poll() is not None or time.time() > deadline:
                        raise SystemExit("server did not start: " + server.output()[-2000:]) from None
                    time.sleep(0.3)
            developer, operator = sign_in(server, role="developer"), sign_in(server, role="operator")
            app_id, _ = release_app(server, app_folder, developer, operator)

            core = lua_round_robin([("GET", f"/miniapps/{app_id}/ui/{name}", {}, "") for name in BUNDLE])
            litestar = lua_round_robin([("GET", f"/litestar-static/{name}", {}, "") for name in BUNDLE])
            for name in BUNDLE:  # the same bytes on both routes
                with urllib.request.urlopen(f"{server.url}/miniapps/{app_id}/ui/{name}") as a:
                    with urllib.request.urlopen(f"{server.url}/litestar-static/{name}") as b:
                        assert a.read() == b.read() == (app_folder / "ui" / name).read_bytes()
            for script in (core, litestar):  # warm-up
                wrk(server.url, script, connections=args.connections, seconds=2)
            ui_runs, static_runs = [], []
            for _ in range(args.rounds):  # interleaved: both see the same machine state
                static_runs.append(
                    wrk(server.url, litestar, connections=args.connections, seconds=args.seconds)
                )
                ui_runs.append(wrk(server.url, core, connections=args.connections, seconds=args.seconds))
            assert all(x["non_2xx"] == 0 for x in ui_runs + static_runs), "non-2xx answers under load"
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.unlink(missing_ok=True)

    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(x[key] for x in runs)

    per_file = sum(BUNDLE.values()) / len(BUNDLE)

    def line(runs: list[dict[str, float]]) -> str:
        rps = median(runs, "rps")
        return (
            f"{rps:8.0f} req/s  {rps * per_file / 2**20:6.1f} MiB/s  p50 {median(runs, 'p50'):.2f} ms  "
            f"p99 {median(runs, 'p99'):.2f} ms"
        )

    ratios = sorted(u["rps"] / s["rps"] for u, s in zip(ui_runs, static_runs, strict=True))
    print_table(
        [
            ("server", "uvicorn (uvloop), 1 process: the yima app + Litestar's static files route"),
            ("bundle", f"{len(BUNDLE)} files, {sum(BUNDLE.values()) // 1024} KiB, requested round-robin"),
            ("Litestar static files route", line(static_runs)),
            ("core /miniapps/{id}/ui/", line(ui_runs)),
            (
                "ratio core/Litestar",
                f"{median(ui_runs, 'rps') / median(static_runs, 'rps'):8.2f}x of the medians "
                f"(per round {ratios[0]:.2f}-{ratios[-1]:.2f}x; target >= 0.8x)",
            ),
            (
                "",
                f"median of {args.rounds} interleaved {args.seconds} s wrk rounds, {args.connections} connections",
            ),
        ]
    )


if __name__ == "__main__":
    main()
