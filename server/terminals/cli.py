"""`yima terminal scan PAYLOAD`: scan a code as a registered terminal (by default `yima dev`'s demo clinic
terminal, whose id and key the demo seeding wrote to the data folder): online, the server decides; `--offline`,
the terminal SDK decides on the lists it synced and keeps the record (`--gate LIST`: and admits by the terminal list
its unit's app holds, as a gate); `yima terminal upload` sends those records."""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.cli_support import Commands, add_common_options, cli_settings

if TYPE_CHECKING:
    from yima_sdk.terminal import Admission, HttpTransport, Terminal, TerminalCredentials

    from server.settings import Settings


class _Stop(Exception):
    """Why the command stops, said in one line on stderr. `status`: 2 when the command line or the key file must
    change, 1 when the server or what the terminal holds is the matter (as `yima`'s other commands answer)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _stopping(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except _Stop as stop:
            print(f"yima: {stop}", file=sys.stderr)
            return stop.status

    return run


def _unb64(text: str) -> bytes:
    from server.wire import b64url_decode

    return b64url_decode(text)


def _root_key(text: str) -> tuple[str, bytes]:
    """`--root-key KID=KEY`: a root key id and its raw Ed25519 public key, unpadded base64url."""
    kid, _, key = text.partition("=")
    try:
        raw = _unb64(key)
    except ValueError:
        raw = b""
    if not kid or len(raw) != 32:
        raise argparse.ArgumentTypeError(
            "KID=KEY: a root key id and its raw Ed25519 public key, unpadded base64url, as root_public_keys lists them"
        )
    return kid, raw


def _fingerprint(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


@dataclass
class _KeyFile:
    path: Path
    content: dict[str, Any]
    credentials: TerminalCredentials
    roots: dict[str, bytes]
    """The root keys the file pins (empty: none yet)."""
    pass_issuer: int | None
    """The issuer whose pass keys sign our apps' passes, as the enrolment answer names it (None: the one issuer
    with pass keys on the trust list)."""


def _key_file(args: argparse.Namespace, settings: Settings) -> _KeyFile:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from yima_sdk.terminal import TerminalCredentials

    from server.terminals.plugin import DEMO_TERMINAL_KEY_FILE

    path = Path(args.key_file) if args.key_file else settings.data_dir / DEMO_TERMINAL_KEY_FILE
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        raw = _unb64(content["private_key"])
        credentials = TerminalCredentials(content["terminal_id"], Ed25519PrivateKey.from_private_bytes(raw))
        roots = {str(kid): _unb64(key) for kid, key in (content.get("root_public_keys") or {}).items()}
        if any(len(key) != 32 for key in roots.values()):
            raise ValueError("a root public key is not 32 bytes")
        pass_issuer = content.get("pass_issuer")
        if pass_issuer is not None and (type(pass_issuer) is not int or not 100000 <= pass_issuer <= 999999):
            raise ValueError("pass_issuer is not an issuer code")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _Stop(f"no usable terminal key file at {path} ({exc}); `yima dev` writes one", 2) from None
    return _KeyFile(path, content, credentials, roots, pass_issuer)


def _transport(args: argparse.Namespace, settings: Settings, key_file: _KeyFile) -> HttpTransport:
    from yima_sdk.terminal import HttpTransport

    url = args.url or settings.base_url
    try:
        return HttpTransport(url, key_file.credentials)
    except ValueError as exc:
        raise _Stop(f"--url {url}: {exc}", 2) from None


def _roots(args: argparse.Namespace, key_file: _KeyFile, *, required: bool) -> dict[str, bytes]:
    """The trust-list root keys to verify with: the key file's, or the operator's `--root-key`s. Never asked of
    the server: whoever answers the URL (a proxy, a spoofed address on plain http) would choose the keys every
    later trust list, revocation and signed time is checked with."""
    given = dict(args.root_key or [])
    if given and key_file.roots and given != key_file.roots:
        pinned = ", ".join(f"{kid} {_fingerprint(raw)}" for kid, raw in sorted(key_file.roots.items()))
        raise _Stop(
            f"--root-key differs from the root keys {key_file.path} pins ({pinned}); to pin others, remove its"
            " root_public_keys first",
            2,
        )
    if given or key_file.roots or not required:
        return given or key_file.roots
    raise _Stop(
        f"{key_file.path} pins no trust-list root keys: pass --root-key KID=KEY (the root_public_keys of the"
        " enrolment answer, or of GET /v1/trust-list/info read on a machine you trust; docs/scan.md)",
        2,
    )


def _pin(key_file: _KeyFile, roots: dict[str, bytes]) -> None:
    """Keep `roots` in the key file, once a trust list they sign was verified: later runs need no flag."""
    from server.terminals.key_file import write_key_file
    from server.wire import b64url

    key_file.content["root_public_keys"] = {kid: b64url(raw) for kid, raw in roots.items()}
    write_key_file(key_file.path, key_file.content)
    key_file.roots = roots
    for kid, raw in sorted(roots.items()):
        print(
            f"yima: pinned trust-list root key {kid} ({_fingerprint(raw)}) in {key_file.path}",
            file=sys.stderr,
        )


def _offline_terminal(
    args: argparse.Namespace, *, roots_required: bool
) -> tuple[Terminal, _KeyFile, dict[str, bytes]]:
    """The terminal SDK on the SQLite file beside the key file (`--db`), with the key file, and the root keys it
    verifies with."""
    from yima_sdk.terminal import Terminal
    from yima_sdk.trust import TrustListError

    settings = cli_settings(args)
    key_file = _key_file(args, settings)
    roots = _roots(args, key_file, required=roots_required)
    transport = _transport(args, settings, key_file)
    db = Path(args.db) if args.db else key_file.path.with_suffix(".sqlite")
    try:
        terminal = Terminal(
            root_public_keys=roots,
            db_path=str(db),
            clock=time.time,
            clock_source="ntp",
            transport=transport,
            pass_issuer=key_file.pass_issuer,
        )
    except TrustListError as exc:
        raise _Stop(
            f"{db} holds a trust list the root keys given do not sign ({exc}): give the right --root-key, or"
            " another --db",
            2,
        ) from None
    except (sqlite3.Error, OSError) as exc:
        raise _Stop(f"cannot open the terminal's file {db} ({exc})", 2) from None
    return terminal, key_file, roots


def _scan_offline(args: argparse.Namespace) -> int:
    from yima_sdk.terminal import TerminalError, TransportError
    from yima_sdk.trust import RevocationError, TrustListError

    terminal, key_file, roots = _offline_terminal(args, roots_required=True)
    try:
        try:
            terminal.refresh()
        except (TransportError, TerminalError) as exc:
            print(f"yima: could not sync ({exc}); deciding with what the terminal holds", file=sys.stderr)
        except (TrustListError, RevocationError) as exc:
            raise _Stop(f"the sync was refused: {exc}", 1) from None
        if terminal.trust_list is None:
            raise _Stop(
                "the terminal holds no trust list yet, so it cannot decide: it must reach the server once (--url)",
                1,
            )
        if roots != key_file.roots:
            _pin(key_file, roots)
        admission = terminal.admit(args.payload, args.gate) if args.gate else None
        decision = (
            admission.decision
            if admission is not None
            else terminal.scan(args.payload, stop=args.stop, tap=args.tap)
        )
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
        if args.stop is not None or args.tap != "on":
            answer["stop"], answer["tap"] = args.stop, args.tap
        if admission is not None:
            answer.update(_gate_answer(admission))
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


_GATE_LINES = {
    "list.no_entry": "未持票 Nothing held for this code now",
    "list.used_up": "已使用 Already used: no re-entry",
    "list.closed": "入场时间已过 Its entry hours are over",
    "list.repeated": "已通行 Admitted already for this code",
}


def _gate_answer(admission: Admission) -> dict[str, Any]:
    """What a gate shows for an admission (`--gate LIST`): its verdict, for how many, the entry, and lines."""
    entry = admission.entry
    if admission.admit and entry is not None:
        lines = [
            "请通行 Admitted" if entry.uses == 1 else "再次通行 Re-entry",
            f"{admission.people} 人 people",
        ]
    else:
        reason = admission.reason or ""
        lines = [_GATE_LINES.get(reason, "拒绝 Refused"), reason]
    shown = (
        None
        if entry is None
        else {"list": entry.list, "key": entry.key, "value": entry.value, "uses": entry.uses}
    )
    return {"admit": admission.admit, "people": admission.people, "entry": shown, "lines": lines}


@_stopping
def cmd_terminal_scan(args: argparse.Namespace) -> int:
    from yima_sdk.terminal import TransportError

    if args.offline:
        return _scan_offline(args)
    if args.gate:
        raise _Stop("--gate decides offline: add --offline (online, the app bound to the scene decides)", 2)
    settings = cli_settings(args)
    transport = _transport(args, settings, _key_file(args, settings))
    try:
        answer = transport.scan_online(args.payload, int(time.time() * 1000), stop=args.stop, tap=args.tap)
    except TransportError as exc:
        raise _Stop(str(exc), 1) from None
    print(json.dumps(json.loads(answer), ensure_ascii=False, indent=2))
    return 0


@_stopping
def cmd_terminal_upload(args: argparse.Namespace) -> int:
    from yima_sdk.terminal import TransportError

    terminal, _, _ = _offline_terminal(args, roots_required=False)  # uploading verifies nothing
    try:
        sent = terminal.upload_pending()
    except TransportError as exc:
        raise _Stop(f"{exc}; the records stay to upload", 1) from None
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
    parser.add_argument(
        "--root-key",
        action="append",
        type=_root_key,
        metavar="KID=KEY",
        help="a trust-list root key to pin when the key file pins none (repeat for each); never fetched",
    )


def _stop(value: str) -> str:
    from yima_sdk._stops import valid_stop

    if not valid_stop(value):
        raise argparse.ArgumentTypeError(
            "a stop is an ASCII id of 1-64 letters, digits, '_', '.', ':' or '-'"
        )
    return value


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
    scan.add_argument(
        "--stop",
        type=_stop,
        help="where the terminal is: a stop id as the fare table names it (people-square); sent with the scan",
    )
    scan.add_argument(
        "--tap",
        choices=("on", "off"),
        default="on",
        help="off: a rider tapping off (下车刷卡), charged nothing; the bus app re-prices by stops (default on)",
    )
    scan.add_argument(
        "--gate",
        metavar="LIST",
        help="with --offline: act as a gate admitting by the terminal list LIST its unit's app holds (a spot's"
        " `gate` tickets): admit once per entry (again where it re-enters), its people at once, nobody else",
    )
    scan.set_defaults(func=cmd_terminal_scan)
    upload = terminal_sub.add_parser("upload", help="upload the records `scan --offline` kept")
    _terminal_options(upload)
    upload.set_defaults(func=cmd_terminal_upload)
