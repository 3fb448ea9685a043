"""The `yima-sdk` command: new, check, dev, pack, login, register, publish. Headless: every input is an argument or an
environment variable, output is plain text (or JSON with --json), and the exit status says what happened:
0 done, 1 the app or the platform said no (invalid manifest, failed checks, refused upload), 2 bad usage."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import string
import sys
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from yima_sdk.errors import YimaError

if TYPE_CHECKING:  # the simulator is imported only by `dev`: the other commands start faster without it
    from yima_sdk.simulator import AsyncSimulator

__all__ = ["main"]

_TEMPLATE = "app"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except YimaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yima-sdk", description="Write, test, pack and publish yima mini-apps."
    )
    commands = parser.add_subparsers(required=True, metavar="command")

    new = commands.add_parser("new", help="scaffold a mini-app with a test")
    new.add_argument("folder", type=Path)
    new.add_argument("--id", help="reverse-DNS app id (default: cn.example.<folder name>)")
    new.add_argument("--name", help="display name (default: the folder name)")
    new.set_defaults(run=_new)

    check = commands.add_parser("check", help="validate miniapp.toml, the entry and the package limits")
    check.add_argument("folder", type=Path, nargs="?", default=Path("."))
    check.set_defaults(run=_check)

    dev = commands.add_parser("dev", help="serve the app on 127.0.0.1 against the simulated platform")
    dev.add_argument("folder", type=Path, nargs="?", default=Path("."))
    dev.add_argument("--port", type=int, default=8790, help="0 picks a free port (default 8790)")
    dev.add_argument("--user", default="alice", help="fixture resident of requests without x-yima-user")
    dev.add_argument("--consent-denied", action="store_true", help="residents refuse every scope")
    dev.add_argument("--quota-exceeded", action="store_true", help="storage writes hit the app's quota")
    dev.add_argument("--payment-failure", action="store_true", help="the one-card refuses every charge")
    dev.add_argument(
        "--payment-confirmation",
        choices=("manual", "auto", "decline"),
        default="manual",
        help="manual (as production): pending until POST /_sim/payments/<id>/confirm; auto: confirmed at once",
    )
    dev.set_defaults(run=_dev)

    pack = commands.add_parser("pack", help="build the reproducible archive and print its digest")
    pack.add_argument("folder", type=Path, nargs="?", default=Path("."))
    pack.add_argument("-o", "--output", type=Path, help="default: <folder>/dist/<id>-<version>.zip")
    pack.set_defaults(run=_pack)

    login = commands.add_parser("login", help="get a developer token by confirming a code as a developer")
    login.add_argument("--server", help="API base URL (default: $YIMA_API or http://127.0.0.1:8000)")
    login.set_defaults(run=_login)

    register = commands.add_parser(
        "register", help="request the app's id for your organisation (an operator approves it)"
    )
    register.add_argument("folder", type=Path, nargs="?", default=Path("."), help="the id is read from here")
    register.add_argument("--id", dest="app_id", help="request this id instead of the folder's")
    register.add_argument(
        "--token", help="developer API token (default: $YIMA_DEVELOPER_TOKEN, else the one `login` saved)"
    )
    register.add_argument(
        "--api", help="API base URL (default: $YIMA_API, else the last `login`'s, else http://127.0.0.1:8000)"
    )
    register.set_defaults(run=_register)

    publish = commands.add_parser("publish", help="upload the app to the developer API")
    publish.add_argument(
        "folder", type=Path, nargs="?", default=Path("."), help="packed in memory, not written"
    )
    publish.add_argument("--archive", type=Path, help="upload this archive instead of packing the folder")
    publish.add_argument(
        "--token", help="developer API token (default: $YIMA_DEVELOPER_TOKEN, else the one `login` saved)"
    )
    publish.add_argument(
        "--api", help="API base URL (default: $YIMA_API, else the last `login`'s, else http://127.0.0.1:8000)"
    )
    publish.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    publish.set_defaults(run=_publish)
    return parser


# ---- new ----------------------------------------------------------------------------------------------


def _new(args: argparse.Namespace) -> int:
    folder: Path = args.folder
    if folder.exists() and any(folder.iterdir()):
        print(f"error: {folder} exists and is not empty", file=sys.stderr)
        return 1
    slug = re.sub(r"[^a-z0-9-]+", "-", folder.resolve().name.lower()).strip("-") or "app"
    app_id = args.id or f"cn.example.{slug if slug[0].isalpha() else 'app-' + slug}"
    values = {"app_id": app_id, "name": args.name or folder.resolve().name}
    from yima_sdk.manifest import parse_manifest

    template = resources.files("yima_sdk") / "templates" / _TEMPLATE
    written = []
    for source, relative in _walk(template, ""):
        target = folder / relative.removesuffix(".tmpl")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(
            string.Template(source.read_text(encoding="utf-8")).substitute(values), encoding="utf-8"
        )
        written.append(target)
    parse_manifest((folder / "miniapp.toml").read_text(encoding="utf-8"))  # a bad --id fails here, loudly
    print(f"created {app_id} in {folder}:")
    for path in sorted(written):
        print(f"  {path.relative_to(folder)}")
    print("its tests run with pytest: pip install 'yima-sdk[test]' brings it")
    print(f"next: cd {folder} && pytest && yima-sdk dev")
    return 0


def _walk(node: resources.abc.Traversable, prefix: str) -> list[tuple[resources.abc.Traversable, str]]:
    found = []
    for child in node.iterdir():
        relative = f"{prefix}{child.name}"
        if child.is_dir():
            found += _walk(child, relative + "/")
        elif child.name.endswith(".tmpl"):
            found.append((child, relative))
    return found


# ---- check ----------------------------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    from yima_sdk._inspect import inspect_app
    from yima_sdk.manifest import load_manifest
    from yima_sdk.pack import pack

    folder = args.folder.resolve()
    manifest = load_manifest(folder)
    print(f"ok   miniapp.toml: {manifest.key}")
    problems = 0
    inspected = inspect_app(folder, manifest.entry)
    if inspected.returncode != 0:
        print(f"FAIL entry {manifest.entry}: {inspected.stderr.strip().splitlines()[-1:]}")
        problems += 1
    else:
        found = json.loads(inspected.stdout)
        print(
            f"ok   entry {manifest.entry}: {len(found['routes'])} routes, scans {found['scenes']}, "
            f"jobs {found['jobs']}"
        )
        for scene in sorted(manifest.scenes - set(found["scenes"])):
            print(f"FAIL scenes: {scene!r} is subscribed in miniapp.toml but has no @app.on_scan({scene!r})")
            problems += 1
        for scene in sorted(set(found["scenes"]) - manifest.scenes):
            print(f"FAIL scenes: @app.on_scan({scene!r}) will never run: add {scene!r} to `scenes`")
            problems += 1
        for job in sorted(set(manifest.jobs) - set(found["jobs"])):
            print(f"FAIL jobs: {job!r} is scheduled in miniapp.toml but has no @app.job({job!r})")
            problems += 1
    if manifest.scopes and "user" not in manifest.capabilities:
        print("FAIL scopes: reading a scope needs the `user` capability in `capabilities`")
        problems += 1
    problems += _check_pages(folder)
    package = pack(folder)
    print(f"ok   package: {len(package.files)} files, {len(package.data)} bytes, {package.digest}")
    return 1 if problems else 0


def _check_pages(folder: Path) -> int:
    """The page's HTML files: what the page policy would refuse, each reported (the limits are pack's)."""
    from yima_sdk.ui_bundle import inline_code

    pages = sorted((folder / "ui").rglob("*.html")) if (folder / "ui").is_dir() else []
    problems = 0
    for page in pages:
        name = page.relative_to(folder).as_posix()
        for found in inline_code(page.read_text(encoding="utf-8", errors="replace")):
            print(f"FAIL {name} {found}: the page policy refuses it; move it into a file of ui/")
            problems += 1
    if pages and not problems:
        print(f"ok   ui: {len(pages)} page(s), no inline script or style")
    return problems


# ---- dev ------------------------------------------------------------------------------------------------


async def _run_due_jobs(simulator: AsyncSimulator) -> None:
    """As the platform does: every second, run the jobs that are due by the simulator's clock, and say so."""
    while True:
        await asyncio.sleep(1)
        for run in await simulator.advance():
            outcome = "ok" if run.ok else f"failed {run.code}, again in {run.retry_in_s} s"
            print(f"job {run.name} {run.job_id} attempt {run.attempt}: {outcome}", flush=True)


def _dev(args: argparse.Namespace) -> int:
    from yima_sdk._inspect import job_handlers
    from yima_sdk.simulator import AsyncSimulator, Switches, serve_http

    switches = Switches(
        consent_denied=args.consent_denied,
        quota_exceeded=args.quota_exceeded,
        payment_failure=args.payment_failure,
        payment_confirmation=args.payment_confirmation,
    )

    async def run() -> None:
        simulator = AsyncSimulator(args.folder, switches=switches)
        await simulator.start()
        server = await serve_http(simulator, args.port, user=args.user)
        port = server.sockets[0].getsockname()[1]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        missing = simulator.missing_layers
        print(f"app {simulator.manifest.key} ({simulator.startup_ms:.0f} ms to start the worker)")
        print(f"users: {', '.join(simulator.platform.users)} (header x-yima-user; default {args.user})")
        on = [name for name, value in vars(switches).items() if value is True]
        print(f"switches: {', '.join(on) or 'none'}; payment confirmation {switches.payment_confirmation}")
        print(
            f"OS layers missing here (production requires them): {', '.join(missing)}"
            if missing
            else "OS layers: every one of the production sandbox's is in force"
        )
        print(f"serving on http://127.0.0.1:{port}/  (simulator state: /_sim/state)", flush=True)
        if "jobs" in simulator.manifest.capabilities and "seed" in await asyncio.to_thread(
            job_handlers, args.folder.resolve(), simulator.manifest.entry
        ):
            simulator.platform.schedule_job("seed", key="yima-sdk-dev-seed")  # demo data, run in a second
            print("demo data: the app's seed job is scheduled", flush=True)
        jobs = loop.create_task(_run_due_jobs(simulator))
        try:
            await stop.wait()
        finally:
            jobs.cancel()
            server.close()
            await server.wait_closed()
            await simulator.close()

    asyncio.run(run())
    return 0


# ---- pack and publish -------------------------------------------------------------------------------------


def _pack(args: argparse.Namespace) -> int:
    from yima_sdk.pack import write_package

    package, target = write_package(args.folder, args.output)
    print(f"packed {package.manifest.key}: {len(package.files)} files, {len(package.data)} bytes -> {target}")
    print(f"digest {package.digest}")
    return 0


def _login(args: argparse.Namespace) -> int:
    from yima_sdk.login import save_token, start, wait_for_token
    from yima_sdk.publish import API_ENV, DEFAULT_API

    api = args.server or os.environ.get(API_ENV) or DEFAULT_API
    started = start(api)
    print(
        f"To sign in, confirm this code within {started.expires_in // 60} minutes as your developer account:"
    )
    print(f"  code: {started.user_code}")
    print(f"  at:   {started.verification_uri}")
    print(f'        (POST {{"user_code": "{started.user_code}"}} with the access token of your OTP sign-in)')
    print("waiting for the confirmation...", flush=True)
    # Ctrl-C only marks the wait cancelled; the wait ends at its next pause. Raised from the signal handler, the
    # KeyboardInterrupt could land in a finalizer run between polls (an answer's socket closing), where Python
    # drops it ("Exception ignored in ..."), and the command would go on polling.
    cancelled = threading.Event()

    def pause(seconds: float) -> None:
        if cancelled.wait(seconds):
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, lambda signum, frame: cancelled.set())
    try:
        token, token_id = wait_for_token(api, started, sleep=pause)
    except KeyboardInterrupt:
        print("cancelled: nothing was saved", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, previous)
    path = save_token(api, token)
    print(f"signed in to {api}: developer token {token_id} saved to {path} (readable by you alone)")
    return 0


def _api_and_token(args: argparse.Namespace) -> tuple[str, str]:
    """--api/--token, else $YIMA_API/$YIMA_DEVELOPER_TOKEN, else what `login` saved, else the default API."""
    from yima_sdk.login import stored_login
    from yima_sdk.publish import API_ENV, DEFAULT_API, TOKEN_ENV

    api = args.api or os.environ.get(API_ENV)
    token = args.token or os.environ.get(TOKEN_ENV, "")
    if not token:
        saved = stored_login(api)
        if saved is not None:
            api, token = saved.api, saved.token
    return api or DEFAULT_API, token


_REGISTRATION_STATES = {
    "pending": "requested: an operator of the platform approves it; publish once it is approved",
    "approved": "approved: yours to publish",
    "rejected": "rejected",
}


def _register(args: argparse.Namespace) -> int:
    from yima_sdk.manifest import load_manifest
    from yima_sdk.publish import register

    app_id = args.app_id or load_manifest(args.folder).id
    api, token = _api_and_token(args)
    registration = register(app_id, api=api, token=token)
    state = _REGISTRATION_STATES.get(registration.status, registration.status)
    reason = f" ({registration.reason})" if registration.reason else ""
    print(f"{registration.app_id} for {registration.org_name}: {state}{reason}")
    return 1 if registration.status == "rejected" else 0


def _publish_hint(code: str, app_id: str, folder: Path) -> str | None:
    """What the developer does next when the platform refuses the app id."""
    if code == "app_id.not_registered":
        return (
            f"to do: run `yima-sdk register {folder}` to request {app_id} for your organisation, then publish"
            " again once an operator has approved it"
        )
    if code == "app_id.outside_namespace":
        return (
            f"to do: {app_id} is outside your organisation's namespaces; set `id` in miniapp.toml to an id under"
            " one of them, or ask the platform's operators to verify your domain and assign its namespace"
        )
    return None


def _publish(args: argparse.Namespace) -> int:
    from yima_sdk.errors import PublishError
    from yima_sdk.pack import pack, read_package
    from yima_sdk.publish import format_report, upload

    package = read_package(args.archive) if args.archive is not None else pack(args.folder)
    api, token = _api_and_token(args)
    print(f"uploading {package.manifest.key} ({package.digest}) to {api}", file=sys.stderr)
    try:
        result = upload(package, api=api, token=token)
    except PublishError as exc:
        hint = _publish_hint(exc.code, package.manifest.id, args.folder)
        if hint is None:
            raise
        print(f"error: {exc}\n{hint}", file=sys.stderr)
        return 1
    if args.json:
        import msgspec

        print(msgspec.json.encode(result).decode())
    else:
        print(format_report(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
