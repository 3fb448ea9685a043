"""`yima terminal scan PAYLOAD`: scan a code online as a registered terminal (by default `yima dev`'s demo clinic
terminal, whose id and key the demo seeding wrote to the data folder)."""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path

from server.cli_support import Commands, add_common_options, cli_settings


def cmd_terminal_scan(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from yima_sdk.terminal import HttpTransport, TerminalCredentials, TransportError

    from server.terminals.plugin import DEMO_TERMINAL_KEY_FILE

    settings = cli_settings(args)
    key_file = Path(args.key_file) if args.key_file else settings.data_dir / DEMO_TERMINAL_KEY_FILE
    try:
        identity = json.loads(key_file.read_text(encoding="utf-8"))
        raw = base64.urlsafe_b64decode(identity["private_key"] + "==")
        credentials = TerminalCredentials(identity["terminal_id"], Ed25519PrivateKey.from_private_bytes(raw))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(
            f"yima: no usable terminal key file at {key_file} ({exc}); `yima dev` writes one", file=sys.stderr
        )
        return 2
    transport = HttpTransport(args.url or settings.base_url, credentials)
    try:
        answer = transport.scan_online(args.payload, int(time.time() * 1000))
    except TransportError as exc:
        print(f"yima: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(json.loads(answer), ensure_ascii=False, indent=2))
    return 0


def add_commands(commands: Commands) -> None:
    terminal = commands.add_parser("terminal", help="act as a terminal")
    terminal_sub = terminal.add_subparsers(dest="terminal_command", required=True)
    scan = terminal_sub.add_parser(
        "scan", help="scan a code online as a terminal (default: the demo clinic terminal of `yima dev`)"
    )
    add_common_options(scan)
    scan.add_argument("payload", help="the code as read from the QR (YA:... or YR:...)")
    scan.add_argument("--url", help="the server (default: YIMA_PUBLIC_URL, or http://YIMA_HOST:YIMA_PORT)")
    scan.add_argument(
        "--key-file",
        help="JSON with terminal_id and private_key (default: <data dir>/demo-clinic-terminal.json)",
    )
    scan.set_defaults(func=cmd_terminal_scan)
