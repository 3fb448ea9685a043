"""Review bypass: bytecode shipped beside the reviewed source must never run in a worker, and the worker
writes no bytecode of its own."""

from __future__ import annotations

import importlib.util
import py_compile
import shutil
from pathlib import Path

import pytest
from sandbox_helpers import APPS, get, running_host

from sandbox import MiniAppError

EVIL = """
from yima_sdk import App

app = App()


@app.get("/ok")
async def ok(ctx, request):
    return {"reviewed": False}
"""


def _ship_with_bytecode(tmp_path: Path) -> Path:
    """The reviewed app plus the attacker's unchecked-hash __pycache__/app.pyc and a sourceless extra.pyc."""
    folder = tmp_path / "shipped_bytecode"
    shutil.copytree(APPS / "shipped_bytecode", folder)
    evil = tmp_path / "evil.py"
    evil.write_text(EVIL)
    unchecked = py_compile.PycInvalidationMode.UNCHECKED_HASH
    py_compile.compile(
        str(evil), cfile=importlib.util.cache_from_source(str(folder / "app.py")), invalidation_mode=unchecked
    )
    (tmp_path / "extra.py").write_text("VALUE = 'never reviewed'\n")
    py_compile.compile(str(tmp_path / "extra.py"), cfile=str(folder / "extra.pyc"))
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


async def test_shipped_bytecode_never_runs_in_place_of_the_reviewed_source(tmp_path: Path) -> None:
    folder = _ship_with_bytecode(tmp_path)
    async with running_host(str(folder)) as (host, keys):
        key = keys[str(folder)]
        assert (await host.call(key, get("/ok"))).body == b'{"reviewed":true}'
        with pytest.raises(MiniAppError) as caught:
            await host.call(key, get("/extra"))
    assert "No module named 'extra'" in caught.value.message
    # and the worker wrote no bytecode of its own beside the source
    assert sorted(p.name for p in (folder / "__pycache__").iterdir()) == [
        Path(importlib.util.cache_from_source(str(folder / "app.py"))).name
    ]
