"""Bridge framing: 4-byte big-endian body length + msgpack body, whatever the message.

The messages themselves (tagged Structs, the host's and the worker's decoders) are `yima_sdk._bridge`, which
re-exports everything here. A frame longer than the agreed limit, or one that does not decode, raises
`FrameError`.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any, Protocol, cast

import msgspec

__all__ = [
    "DEFAULT_MAX_FRAME",
    "FrameDecoder",
    "FrameError",
    "FrameProtocol",
    "FrameTooLarge",
    "StreamTransport",
    "encode_frame",
    "read_frame_blocking",
]

DEFAULT_MAX_FRAME = 4 * 1024 * 1024
_HEADER = struct.Struct(">I")
_CHUNK = 64 * 1024
"""Bytes a bridge end reads at once; a longer frame is read into a buffer of its own."""
_encoder = msgspec.msgpack.Encoder()


class FrameError(Exception):
    """A frame is oversized or does not decode: the peer is broken or hostile."""


class FrameTooLarge(FrameError):
    """A frame (announced or encoded) is longer than the agreed limit."""


def encode_frame(message: msgspec.Struct, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    """Encode one message as a length-prefixed frame; FrameError if the body exceeds `max_frame`."""
    body = _encoder.encode(message)
    if len(body) > max_frame:
        raise FrameTooLarge(f"frame of {len(body)} bytes exceeds the {max_frame}-byte limit")
    return _HEADER.pack(len(body)) + body


class FrameDecoder:
    """Incremental frame splitter: the transport reads straight into `buffer()` and reports `received(n)`;
    decoded messages come back. FrameError on anything malformed.

    Reads land in one fixed chunk allocated once, so a read allocates nothing: asyncio's plain `recv(256 KiB)`
    mapped, shrank and unmapped a fresh 256 KiB block per read (three syscalls and a page fault on each bridge
    hop). A frame longer than the chunk gets a buffer of its own size, read into directly.
    """

    def __init__(self, decoder: msgspec.msgpack.Decoder[Any], max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._decoder = decoder
        self._max = max_frame
        self._chunk = memoryview(bytearray(_CHUNK))
        self._start = 0
        """The first byte of the chunk not yet decoded."""
        self._end = 0
        """The end of what was read into the chunk."""
        self._big: memoryview | None = None
        """The body of a frame longer than the chunk, while it arrives."""
        self._big_filled = 0

    def buffer(self) -> memoryview:
        """Where the next read goes (never empty)."""
        if self._big is not None:
            return self._big[self._big_filled :]
        return self._chunk[self._end :]

    def received(self, size: int) -> list[Any]:
        """`size` bytes were read into `buffer()`: the messages they complete."""
        if self._big is not None:
            self._big_filled += size
            if self._big_filled < len(self._big):
                return []
            body, self._big = self._big, None
            return [self._decode(body)]
        self._end += size
        out: list[Any] = []
        chunk, pos, end = self._chunk, self._start, self._end
        while end - pos >= 4:
            (length,) = _HEADER.unpack_from(chunk, pos)
            if length > self._max:
                raise FrameTooLarge(f"frame header announces {length} bytes, over the {self._max}-byte limit")
            if end - pos - 4 < length:
                break
            out.append(self._decode(chunk[pos + 4 : pos + 4 + length]))
            pos += 4 + length
        self._start = pos
        if pos == end:
            self._start = self._end = 0
        elif end - pos >= 4 and 4 + length > len(chunk):
            # a frame the chunk cannot hold: its body gets a buffer of its own, filled by the next reads
            self._big = memoryview(bytearray(length))
            self._big_filled = end - pos - 4
            self._big[: self._big_filled] = chunk[pos + 4 : end]
            self._start = self._end = 0
        elif end == len(chunk):
            # the start of a frame at the end of the chunk: move it to the front, where the rest fits
            rest = bytes(chunk[pos:end])
            chunk[: len(rest)] = rest
            self._start, self._end = 0, len(rest)
        return out

    def feed(self, data: bytes) -> list[Any]:
        """The messages that `data` completes, for bytes already read elsewhere."""
        out: list[Any] = []
        view, offset = memoryview(data), 0
        while offset < len(view):
            into = self.buffer()
            size = min(len(into), len(view) - offset)
            into[:size] = view[offset : offset + size]
            offset += size
            out += self.received(size)
        return out

    def _decode(self, body: memoryview) -> Any:
        try:
            return self._decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise FrameError(f"malformed frame: {exc}") from None


class StreamTransport(Protocol):
    """What the bridge needs of its transport. asyncio's and uvloop's stream transports both have it, but
    uvloop's is not a subclass of `asyncio.Transport`: only the methods are relied on, never the class."""

    def write(self, data: bytes) -> None: ...
    def is_closing(self) -> bool: ...
    def abort(self) -> None: ...


class FrameProtocol(asyncio.BufferedProtocol):
    """One end of the bridge: decodes frames to `on_message`, reports loss or a bad frame to `on_lost`. A
    buffered protocol: the loop reads into the decoder's own buffer (`FrameDecoder`)."""

    def __init__(
        self,
        decoder: msgspec.msgpack.Decoder[Any],
        on_message: Callable[[Any], None],
        on_lost: Callable[[BaseException | None], None],
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self._frames = FrameDecoder(decoder, max_frame)
        self._on_message = on_message
        self._on_lost = on_lost
        self.max_frame = max_frame
        self.transport: StreamTransport | None = None
        self._lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # the loop hands a stream transport to a stream protocol; uvloop's is not an asyncio.Transport subclass
        self.transport = cast(StreamTransport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._frames.buffer()

    def buffer_updated(self, nbytes: int) -> None:
        if self._lost:
            return
        try:
            messages = self._frames.received(nbytes)
        except FrameError as exc:
            self._lose(exc)
            return
        for message in messages:
            self._on_message(message)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._lose(exc)

    def send(self, message: msgspec.Struct) -> None:
        """Encode and write one frame (FrameError if too large; nothing is sent then)."""
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("bridge closed")
        self.transport.write(encode_frame(message, self.max_frame))

    def _lose(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        if self.transport is not None:
            self.transport.abort()
        self._on_lost(exc)


def read_frame_blocking(sock: Any, decoder: msgspec.msgpack.Decoder[Any], max_frame: int) -> Any:
    """Read exactly one frame from a blocking socket (the worker's Init, before its event loop runs)."""
    header = _recv_exactly(sock, 4)
    (size,) = _HEADER.unpack(header)
    if size > max_frame:
        raise FrameTooLarge(f"frame header announces {size} bytes, over the {max_frame}-byte limit")
    try:
        return decoder.decode(_recv_exactly(sock, size))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FrameError(f"malformed frame: {exc}") from None


def _recv_exactly(sock: Any, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("bridge closed")
        chunks += chunk
    return bytes(chunks)
