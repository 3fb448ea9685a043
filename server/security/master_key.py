"""Where the master key comes from: YIMA_MASTER_KEY, or a key file (created by `yima dev` only)."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from server.settings import Settings


class MasterKeyError(RuntimeError):
    pass


def _decode(text: str, source: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except ValueError:
        raise MasterKeyError(f"{source}: not base64url") from None
    if len(key) != 32:
        raise MasterKeyError(f"{source}: must decode to 32 bytes, got {len(key)}")
    return key


def load_master_key(settings: Settings, *, create: bool = False) -> bytes:
    """The 32-byte master key. `create` (dev only) writes a new key file with mode 0600 when none exists."""
    if settings.master_key:
        return _decode(settings.master_key, "YIMA_MASTER_KEY")
    path: Path = settings.resolved_master_key_file
    if path.exists():
        return _decode(path.read_text(), str(path))
    if not create:
        raise MasterKeyError(
            f"no master key: set YIMA_MASTER_KEY or YIMA_MASTER_KEY_FILE (looked for {path}); "
            "`yima dev` creates one in its data folder"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.urlsafe_b64encode(key).decode().rstrip("="))
    return key


def new_master_key_text() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
