"""`yima-sdk login`: a developer token for this machine by the platform's device login (RFC 8628 style).

    POST {api}/v1/developer/device                 -> device_code, user_code, verification_uri, expires_in, interval
    (the developer, signed in by OTP as a developer account, confirms user_code at verification_uri)
    POST {api}/v1/developer/device/token  {"device_code": ...}   every `interval` s until the token comes:
         400 device.authorization_pending (keep polling), 429 device.slow_down (5 s more between polls),
         410 device.expired, 409 device.code_used

The token is saved per API in `credentials.json` of the user's config folder ($XDG_CONFIG_HOME/yima-sdk, else
~/.config/yima-sdk), readable by the user alone (0600); `yima-sdk publish` uses it when given no token.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import msgspec

from yima_sdk._http import call, check_api
from yima_sdk.errors import YimaError

__all__ = [
    "DeviceAuthorization",
    "StoredLogin",
    "credentials_path",
    "save_token",
    "start",
    "stored_login",
    "wait_for_token",
]

SLOW_DOWN_STEP_S = 5  # RFC 8628 §3.5


class DeviceAuthorization(msgspec.Struct, frozen=True, kw_only=True):
    """The platform's answer to a new sign-in. Unknown fields are accepted: the API appends fields."""

    device_code: str
    user_code: str
    verification_uri: str
    expires_in: int
    interval: int


class _Token(msgspec.Struct, frozen=True):
    token: str
    id: int


class StoredLogin(msgspec.Struct, frozen=True, kw_only=True):
    api: str
    token: str


def _post(api: str, path: str, body: dict[str, str]) -> bytes:
    return call(
        f"{check_api(api, YimaError, 'login')}{path}",
        data=json.dumps(body).encode(),
        content_type="application/json",
        error=YimaError,
        prefix="login",
        timeout=30.0,
    )


def start(api: str) -> DeviceAuthorization:
    """Ask the platform for a sign-in; show `user_code` and `verification_uri` to the developer."""
    try:
        return msgspec.json.decode(_post(api, "/v1/developer/device", {}), type=DeviceAuthorization)
    except msgspec.DecodeError as exc:
        raise YimaError(f"unexpected answer from {api}: {exc}", code="login.bad_answer") from None


def wait_for_token(
    api: str, started: DeviceAuthorization, *, sleep: Callable[[float], None] = time.sleep
) -> tuple[str, int]:
    """Poll until the developer confirms: (token, token id). YimaError with the API's code when the sign-in
    expires or fails (`device.expired` ...)."""
    interval = started.interval
    while True:
        sleep(interval)
        try:
            answer = _post(api, "/v1/developer/device/token", {"device_code": started.device_code})
        except YimaError as exc:
            if exc.code == "device.authorization_pending":
                continue
            if exc.code == "device.slow_down":
                interval += SLOW_DOWN_STEP_S
                continue
            raise
        token = msgspec.json.decode(answer, type=_Token)
        return token.token, token.id


def credentials_path(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".config")
    return Path(base) / "yima-sdk" / "credentials.json"


def _read(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise YimaError(f"cannot read {path}: {exc}", code="login.bad_credentials_file") from None
    return data if isinstance(data, dict) else {}


def save_token(api: str, token: str, path: Path | None = None) -> Path:
    """Remember `token` for `api` (and `api` as the default), in a file only the user can read (0600)."""
    path = path or credentials_path()
    api = check_api(api, YimaError, "login")
    data = _read(path)
    tokens = data.get("tokens")
    tokens = dict(tokens) if isinstance(tokens, dict) else {}
    tokens[api] = token
    text = json.dumps({"default": api, "tokens": tokens}, indent=2, sort_keys=True) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    # created 0600 from the start: never a moment where another user could read the token
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(partial, path)
    return path


def stored_login(api: str | None = None, path: Path | None = None) -> StoredLogin | None:
    """The saved token for `api` (default: the API of the last login), or None."""
    data = _read(path or credentials_path())
    tokens = data.get("tokens")
    if not isinstance(tokens, dict):
        return None
    default = data.get("default")
    chosen = api.rstrip("/") if api else default if isinstance(default, str) else None
    token = tokens.get(chosen) if chosen else None
    return StoredLogin(api=chosen, token=token) if chosen and isinstance(token, str) else None
