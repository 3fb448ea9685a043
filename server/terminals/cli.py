"""`yima terminal scan PAYLOAD`: scan a code as a registered terminal (by default `yima dev`'s demo clinic
terminal, whose id and key the demo seeding wrote to the data folder): online, the server decides; `--offline`,
the terminal SDK decides on the lists it synced and keeps the record; `yima terminal upload` sends those records."""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.cli_support import Commands, add_common_options, cli_settings

if TYPE_CHECKING:
    from yima_sdk.terminal import HttpTransport, Terminal


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _transport(args: argparse.Namespace) -> tuple[HttpTransport, dict[str, Any], Path] | None:
    """The terminal's transport, its key file's content and the key file's path; None (after saying why) when the
    key file is missing or unusable."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from yima_sdk.terminal import HttpTransport, TerminalCredentials

    from server.terminals.plugin import DEMO_TERMINAL_KEY_FILE

    settings = cli_settings(args)
    key_file = Path(args.key_file) if args.key_file else settings.data_dir / DEMO_TERMINAL_KEY_FILE
    try:
        identity = json.loads(key_file.read_text(encoding="utf-8"))
        raw = _unb64(identity["private_key"])
        credentials = TerminalCredentials(identity["terminal_id"], Ed25519PrivateKey.from_private_bytes(raw))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(
            f"yima: no usable terminal key file at {key_file} ({exc}); `yima dev` writes one", file=sys.stderr
        )
        return None
    return HttpTransport(args.url or settings.base_url, credentials), identity, key_file


def _offline_terminal(args: argparse.Namespace) -> Terminal | None:
    """The terminal SDK on the SQLite file beside the key file, its roots pinned from the key file (a key file
    from before they were written there: asked of the server once, then kept in it)."""
    import httpx
    from yima_sdk.terminal import Terminal

    found = _transport(args)
    if found is None:
        return None
    transport, identity, key_file = found
    roots = identity.get("root_public_keys")
    if not roots:
        info = httpx.get(f"{transport.base_url}/v1/trust-list/info", timeout=30).json()
        roots = identity["root_public_keys"] = info["root_public_keys"]
        key_file.write_text(json.dumps(identity, indent=2))
    db = Path(args.db) if args.db else key_file.with_suffix(".sqlite")
    return Terminal(
        root_public_keys={kid: _unb64(key) for kid, key in roots.items()},
        db_path=str(db),
        clock=time.time,
        clock_source="ntp",
        transport=transport,
    )


def _scan_offline(args: argparse.Namespace) -> int:
    from yima_sdk.terminal import TransportError
    from yima_sdk.trust import RevocationError, TrustListError

    terminal = _offline_terminal(args)
    if terminal is None:
        return 2
    try:
        try:
            terminal.refresh()
        except TransportError as exc:
            print(f"yima: could not sync ({exc}); deciding with what the terminal holds", file=sys.stderr)
        except (TrustListError, RevocationError) as exc:
            print(f"yima: the sync was refused: {exc}", file=sys.stderr)
            return 1
        decision = terminal.scan(args.payload)
        code = decision.code
        answer: dict[str, Any] = {
            "mode": "offline",
            "result": decision.result,
            "reason": decision.reason,
            "record_id": decision.record_id,
            "credential_type": code.kind if code else None,
            "color": code.colour if code else None,
            "pending": terminal.pending_count(),
        }
        if code is not None and code.app_pass is not None:
            claims = code.app_pass
            answer["pass"] = {
                "app_id": claims.a,
                "kind": claims.k,
                "number": claims.p,
                "valid_until": claims.exp,
            }
        skipped = terminal.revocations.unknown_kinds()
        if skipped:
            answer["revocation_kinds_skipped"] = skipped  # a newer server's list: this SDK applies the rest
    finally:
        terminal.close()
    print(json.dumps(answer, ensure_ascii=False, indent=2))
    return 0


def cmd_terminal_scan(args: argparse.Namespace) -> int:
    from yima_sdk.terminal import TransportError

    if args.offline:
        return _scan_offline(args)
    found = _transport(args)
    if found is None:
        return 2
    transport = found[0]
    try:
        answer = transport.scan_online(args.payload, int(time.time() * 1000))
    except TransportError as exc:
        print(f"yima: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(json.loads(answer), ensure_ascii=False, indent=2))
    return 0


def cmd_terminal_upload(args: argparse.Namespace) -> int:
    from yima_sdk.terminal import TransportError

    terminal = _offline_terminal(args)
    if terminal is None:
        return 2
    try:
        sent = terminal.upload_pending()
    except TransportError as exc:
        print(f"yima: {exc}; the records stay to upload", file=sys.stderr)
        return 1
    finally:
        terminal.close()
    print(json.dumps({"uploaded": sent}))
    return 0


def _terminal_options(parser: argparse.ArgumentParser) -> None:
    add_common_options(parser)
    parser.add_argument("--url", help="the server (default: YIMA_PUBLIC_URL, or http://YIMA_HOST:YIMA_PORT)")
    parser.add_argument(
        "--key-file",
        help="JSON with terminal_id and private_key (default: <data dir>/demo-clinic-terminal.json)",
    )
    parser.add_argument(
        "--db", help="the offline terminal's SQLite file (default: the key file's name with .sqlite)"
    )


def add_commands(commands: Commands) -> None:
    from server.terminals.scans.outbox_cli import add_commands as add_outbox_commands

    add_outbox_commands(commands)
    terminal = commands.add_parser("terminal", help="act as a terminal")
    terminal_sub = terminal.add_subparsers(dest="terminal_command", required=True)
    scan = terminal_sub.add_parser(
        "scan", help="scan a code as a terminal (default: the demo clinic terminal of `yima dev`)"
    )
    _terminal_options(scan)
    scan.add_argument("payload", help="the code as read from the QR (YA:..., YR:... or a YP1. pass)")
    scan.add_argument(
        "--offline",
        action="store_true",
        help="decide here with the terminal SDK (synced first when the server answers) and keep the record",
    )
    scan.set_defaults(func=cmd_terminal_scan)
    upload = terminal_sub.add_parser("upload", help="upload the records `scan --offline` kept")
    _terminal_options(upload)
    upload.set_defaults(func=cmd_terminal_upload)
