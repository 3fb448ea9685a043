"""A terminal's key file: the JSON that `yima dev` writes for its demo terminal and `yima terminal` reads
(`terminal_id`, `private_key`, `token_endpoint`, and the pinned `root_public_keys`)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_key_file(path: Path, identity: dict[str, Any]) -> None:
    """Write `identity` to `path` whole or not at all, readable by its owner only.

    It holds the terminal's private key: a crash or a full disk halfway through an in-place rewrite would lose
    the key (the terminal must then be registered again), and a file created with the default umask is readable
    by every local user. So: a temporary file beside it (mode 0600 from its creation), flushed to disk, renamed
    over the old one, and the folder synced so the rename itself survives a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(identity, indent=2))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
