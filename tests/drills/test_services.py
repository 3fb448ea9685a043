"""The drill helpers themselves: a private Redis dies with `kill -9` and comes back on the same port."""

from __future__ import annotations

from pathlib import Path

import redis

from tests.drills.services import private_redis


def test_private_redis_is_killed_and_restarted_on_its_port(tmp_path: Path) -> None:
    with private_redis(tmp_path / "redis") as server:
        client = redis.Redis.from_url(server.url, socket_timeout=2)
        client.set("k", "v")
        server.kill()
        assert not server.answers()
        server.start()
        # A fresh Redis: the data is gone (no persistence), the port is the same, clients reconnect.
        assert client.get("k") is None
        client.close()
    assert not server.answers()
