"""`yima keys list|rotate|retire` against the test database: rotation republishes the trust list."""

from __future__ import annotations

import asyncio

from server.cli import main


def _run(monkeypatch, capsys, settings, *argv):
    monkeypatch.setenv("YIMA_MODE", "test")
    monkeypatch.setenv("YIMA_MASTER_KEY", settings.master_key)
    monkeypatch.setenv("YIMA_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("YIMA_REDIS_NAMESPACE", settings.redis_namespace)
    code = main([*argv, "--database-url", settings.database_url])
    return code, capsys.readouterr().out


def test_rotate_then_retire(monkeypatch, capsys, settings):
    # The CLI runs its own event loop; this test is synchronous so that works.
    assert asyncio.get_event_loop_policy() is not None
    code, out = _run(monkeypatch, capsys, settings, "keys", "list")
    assert code == 0 and "issuer" in out and "trust list version" in out
    version = int(out.rsplit("trust list version", 1)[1])
    code, out = _run(monkeypatch, capsys, settings, "keys", "rotate")
    assert code == 0 and "rotated issuer" in out
    new_kid = out.split("new active key ", 1)[1].split(";", 1)[0]
    assert int(out.rsplit("trust list version", 1)[1]) == version + 1
    old = [line.split()[0] for line in out.splitlines() if " issuer " in line and "verify-only" in line]
    assert old, out
    code, out = _run(monkeypatch, capsys, settings, "keys", "retire", old[-1])
    assert code == 0 and f"retired {old[-1]}" in out
    assert any(line.startswith(new_kid) and "active" in line for line in out.splitlines())
    assert int(out.rsplit("trust list version", 1)[1]) == version + 2
