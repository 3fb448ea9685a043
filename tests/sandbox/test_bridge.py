"""The bridge wire format: frames round-trip, split anywhere, and anything malformed or oversized is refused."""

from __future__ import annotations

import pytest
from yima_sdk._bridge import (
    HOST_DECODER,
    WORKER_DECODER,
    Call,
    CapabilityRequest,
    FrameDecoder,
    FrameError,
    FrameTooLarge,
    Request,
    Response,
    Result,
    encode_frame,
)


def test_frames_round_trip_even_when_split_byte_by_byte() -> None:
    messages = [
        Result(id=1, response=Response.json({"ok": True})),
        CapabilityRequest(call_id=1, id=2, capability="storage", operation="get", args=["k"]),
    ]
    stream = b"".join(encode_frame(m) for m in messages)
    decoder = FrameDecoder(WORKER_DECODER)
    got = [m for i in range(len(stream)) for m in decoder.feed(stream[i : i + 1])]
    assert got == messages


@pytest.mark.parametrize("piece", [1000, 70_000, 1 << 20])
def test_frames_longer_than_the_read_buffer_round_trip(piece: int) -> None:
    # a bridge end reads into a 64 KiB buffer; a longer frame is read into one of its own, whatever the split
    messages = [
        Result(id=1, response=Response.json({"ok": True})),
        Result(id=2, response=Response(body=bytes(range(256)) * 1000)),
        CapabilityRequest(call_id=2, id=3, capability="storage", operation="put", args=["k", "v" * 65_530]),
        Result(id=3, value="x" * 65_000),
    ]
    stream = b"".join(encode_frame(m) for m in messages)
    decoder = FrameDecoder(WORKER_DECODER)
    got = [m for at in range(0, len(stream), piece) for m in decoder.feed(stream[at : at + piece])]
    assert got == messages


def test_each_side_decodes_only_what_the_other_may_send() -> None:
    call = encode_frame(Call(id=1, request=Request(method="GET", path="/")))
    assert FrameDecoder(HOST_DECODER).feed(call)[0].request.path == "/"
    with pytest.raises(FrameError):
        FrameDecoder(WORKER_DECODER).feed(call)  # a worker cannot send Call


def test_oversized_frames_are_refused_on_both_ends() -> None:
    big = Result(id=1, response=Response(body=b"x" * 2000))
    with pytest.raises(FrameTooLarge):
        encode_frame(big, max_frame=1000)
    with pytest.raises(FrameTooLarge):
        FrameDecoder(WORKER_DECODER, max_frame=1000).feed(encode_frame(big))
    # the header alone is enough to refuse: no waiting for 4 GB to arrive
    with pytest.raises(FrameTooLarge):
        FrameDecoder(WORKER_DECODER).feed(b"\xff\xff\xff\xff")


@pytest.mark.parametrize(
    "garbage", [b"\x00\x00\x00\x03abc", b"\x00\x00\x00\x01\xc1", b"\x00\x00\x00\x04" + b"\x93\xa3zzz"[:4]]
)
def test_garbage_is_a_frame_error(garbage: bytes) -> None:
    with pytest.raises(FrameError):
        FrameDecoder(WORKER_DECODER).feed(garbage)
