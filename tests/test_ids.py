"""Scan and request ids: valid version-7 UUIDs, unique, ordered by time, different in a forked child."""

from __future__ import annotations

import os
import time
import uuid

from server.ids import request_id, uuid7, uuid_text


def test_uuid7_is_a_valid_time_ordered_uuid():
    before = time.time_ns() // 1_000_000
    ids = [uuid7() for _ in range(20_000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    stamps = [i.int >> 80 for i in ids]
    assert before <= stamps[0] and stamps[-1] <= after
    assert stamps == sorted(stamps)  # later ids never carry an earlier time
    assert str(uuid.UUID(str(ids[0]))) == str(ids[0])


def test_request_ids_are_unique_and_a_forked_child_does_not_repeat_them():
    ids = {request_id() for _ in range(10_000)}
    assert len(ids) == 10_000 and all(len(i) == 16 for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids, then leave without running pytest's teardown
        os.write(write, ",".join([request_id() for _ in range(100)] + [str(uuid7())]).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 1 << 16).decode().split(",")
    os.close(read)
    parent = [request_id() for _ in range(100)] + [str(uuid7())]
    assert not set(child) & set(parent)


def test_uuid_text_is_the_canonical_form():
    for value in [uuid7() for _ in range(1000)] + [uuid.UUID(int=0), uuid.UUID(int=(1 << 128) - 1)]:
        assert uuid_text(value) == str(value)
