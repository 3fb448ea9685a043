"""The `yima` command: dev, serve, migrate, openapi, admin, keys, audit.

Every command reads the same settings (YIMA_* variables, then flags), so `yima admin grant` acts on the database
that `yima dev` is using when both point at the same data folder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from pathlib import Path

from server.cli_support import (
    CLIPlugin,
    add_common_options,
    cli_settings,
    database,
    settings_from,
)
from server.settings import Mode, Settings, SettingsError, check_can_serve


def _export_env(settings: Settings) -> None:
    """uvicorn's worker processes rebuild settings from the environment, so flags travel as YIMA_* variables."""
    for name in (
        "data_dir",
        "database_url",
        "redis_url",
        "host",
        "port",
        "workers",
        "mode",
        "public_url",
        "metrics_port",
    ):
        value = getattr(settings, name)
        if value not in ("", None):
            os.environ["YIMA_" + name.upper()] = str(value)
    if settings.dev_apps:
        os.environ["YIMA_DEV_APPS"] = os.pathsep.join(str(folder) for folder in settings.dev_apps)


# -- commands ------------------------------------------------------------------------------------------------


def cmd_dev(args: argparse.Namespace) -> int:
    from server.observability import configure_logging
    from server.ops.workers import PortInUse, listening_sockets, serve_one

    settings = settings_from(args, mode=Mode.DEVELOPMENT.value, dev_apps=_dev_apps(args.apps))
    if settings.dev_first_party:
        import msgspec

        first_party = tuple(f for f in _first_party_apps() if f not in settings.dev_apps)
        settings = msgspec.structs.replace(settings, dev_apps=settings.dev_apps + first_party)
    configure_logging(settings.log_level)
    try:
        # Bound before the database starts: a taken port fails at once, and nothing says "running" before it.
        sockets = listening_sockets(settings, reuse_port=False)
    except PortInUse as exc:
        print(
            f"yima: {exc}. Choose another port: `yima dev --port P`, `YIMA_PORT=P yima dev` or `make dev PORT=P`.",
            file=sys.stderr,
        )
        return 1
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as held:
        for sock in sockets:
            held.enter_context(sock)
        settings = held.enter_context(database(settings))
        from server.security.master_key import load_master_key

        load_master_key(settings, create=True)
        asyncio.run(_seed(settings))
        _export_env(settings)
        serve_one(settings, reuse_port=False, sockets=sockets, on_ready=lambda: _banner(settings))
    print("yima dev stopped; the embedded PostgreSQL is shut down.", file=sys.stderr)
    return 0


def _dev_apps(folders: list[str] | None) -> tuple[Path, ...] | None:
    """`--app PATH` folders, absolute (uvicorn's process resolves them), each checked to hold a valid manifest."""
    if not folders:
        return None
    from yima_sdk.errors import ManifestError
    from yima_sdk.manifest import load_manifest

    resolved = []
    for folder in folders:
        path = Path(folder).resolve()
        try:
            load_manifest(path)
        except (ManifestError, OSError) as exc:
            raise SettingsError(f"--app {folder}: {exc}") from None
        resolved.append(path)
    return tuple(resolved)


def _first_party_apps() -> list[Path]:
    """The folders of the checkout's `miniapps/` that hold a manifest (none in an installed package)."""
    root = Path(__file__).resolve().parent.parent / "miniapps"
    return sorted(f for f in root.glob("*") if (f / "miniapp.toml").is_file())


def _banner(s: Settings) -> None:
    from server.seed import DEMO_AUTHORITY_PHONE, DEMO_OPERATOR_PHONE, DEMO_RESIDENT_PHONE
    from server.terminals.plugin import DEMO_TERMINAL_KEY_FILE

    url = s.base_url
    data = s.data_dir.resolve()
    dirs = "" if s.data_dir == Path("data") else f" --data-dir {s.data_dir}"
    port = "" if url == "http://127.0.0.1:8000" else f" --url {url}"
    print(
        f"""
yima dev is running at {url}  (data: {data}, Ctrl-C to stop)

Resident app (a phone page; installable): {url}/app/
  sign in as the demo resident {DEMO_RESIDENT_PHONE}; under yima dev the page shows the SMS code it sent
Operator console: {url}/console/
  the operator {DEMO_OPERATOR_PHONE} reviews and releases apps, makes terminal enrolment codes; the health
  authority {DEMO_AUTHORITY_PHONE} imports colours
Terminal page (a scanner in a browser): {url}/terminal/
  enrol it with a code from the console, then paste a payload or show a code to the camera

Try it:
  curl -s -X POST {url}/v1/auth/otp -H 'content-type: application/json' -d '{{"phone":"{DEMO_RESIDENT_PHONE}"}}'
  curl -s '{url}/v1/dev/sms-outbox?phone={DEMO_RESIDENT_PHONE}'          # read the code
  curl -s -X POST {url}/v1/auth/token -H 'content-type: application/json' \\
       -d '{{"phone":"{DEMO_RESIDENT_PHONE}","code":"<code>"}}'
  curl -s {url}/v1/me -H 'authorization: Bearer <access_token>'
  curl -s {url}/v1/me/codes/ankang -H 'authorization: Bearer <access_token>'   # the signed QR payload (.svg, .png)

Scan that payload as the demo clinic terminal (its id and key: {data / DEMO_TERMINAL_KEY_FILE}):
  yima terminal scan{dirs}{port} '<payload>'

Demo accounts (log in like the resident): operator {DEMO_OPERATOR_PHONE}, health authority {DEMO_AUTHORITY_PHONE}.
API schema: {url}/schema  Health: {url}/health
""",
        flush=True,
    )


def _run_uvicorn(settings: Settings) -> int:
    from server.ops.workers import PortInUse, Supervisor, check_port_free, serve_one

    _export_env(settings)
    try:
        if settings.workers > 1:
            return Supervisor(settings).run()
        for host, port in ((settings.host, settings.port), (settings.metrics_host, settings.metrics_port)):
            if port:
                check_port_free(host, port)
    except PortInUse as exc:
        print(f"yima: {exc}", file=sys.stderr)
        return 1
    serve_one(settings, reuse_port=False)
    return 0


async def _seed(settings: Settings) -> None:
    import msgspec

    from server.app import create_app
    from server.seed import seed_demo

    # the serving process loads the local mini-apps; this one only writes the demo data
    app = create_app(msgspec.structs.replace(settings, dev_apps=()))
    async with app.lifespan():
        await seed_demo(app)


def cmd_serve(args: argparse.Namespace) -> int:
    from server.observability import configure_logging

    settings = settings_from(args)
    if settings.mode is not Mode.PRODUCTION and not args.allow_development:
        # Development and test modes show OTP codes at /v1/dev/sms-outbox, pay top-ups without a provider and
        # create a master key file: one stray YIMA_MODE on a server gives every account away.
        raise SettingsError(
            f"YIMA_MODE: `yima serve` refuses {settings.mode.value} mode (it shows login codes to anyone); "
            "use `yima dev`, or pass --allow-development on a machine nobody else reaches"
        )
    check_can_serve(settings)
    configure_logging(settings.log_level)
    if not settings.database_url:
        raise SettingsError(
            "YIMA_DATABASE_URL: `yima serve` needs a configured PostgreSQL (`yima dev` embeds one)"
        )
    return _run_uvicorn(settings)


def cmd_migrate(args: argparse.Namespace) -> int:
    from server.core import migrate

    with database(cli_settings(args)) as settings:
        applied = asyncio.run(migrate(settings))
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else "; up to date"))
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    from server.openapi_export import write_openapi

    path = write_openapi(Path(args.output))
    print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="yima", description="yima (一码) server")
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run locally on an embedded PostgreSQL with demo data")
    add_common_options(dev)
    dev.add_argument("--host")
    dev.add_argument("--port", type=int)
    dev.add_argument(
        "--app",
        action="append",
        dest="apps",
        metavar="PATH",
        help="run this local mini-app folder as a released app, reloaded when its files change (repeatable)",
    )
    dev.set_defaults(func=cmd_dev)

    serve = sub.add_parser("serve", help="run against YIMA_DATABASE_URL and YIMA_REDIS_URL")
    add_common_options(serve)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="worker processes (more than one needs Redis)")
    serve.add_argument(
        "--allow-development",
        action="store_true",
        help="serve in YIMA_MODE=development or test anyway (login codes readable at /v1/dev/sms-outbox)",
    )
    serve.set_defaults(func=cmd_serve)

    mig = sub.add_parser("migrate", help="apply pending database migrations")
    add_common_options(mig)
    mig.set_defaults(func=cmd_migrate)

    oa = sub.add_parser("openapi", help="write the OpenAPI document")
    oa.add_argument("--output", default="openapi/openapi.json")
    oa.set_defaults(func=cmd_openapi)

    for plugin in _command_plugins():
        plugin.add_cli_commands(sub)

    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except SettingsError as exc:
        print(f"yima: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _command_plugins() -> list[CLIPlugin]:
    """The app's plugins that contribute commands (keys, audit, ...), in the app's order: a new domain adds its
    commands on its own plugin, not here."""
    from server.app import PLUGIN_TYPES

    # The types themselves answer the protocol: add_cli_commands is a static method.
    return [plugin for plugin in PLUGIN_TYPES if isinstance(plugin, CLIPlugin)]


if __name__ == "__main__":
    sys.exit(main())
