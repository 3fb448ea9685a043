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
    """Incremental frame splitter: feed bytes, get decoded messages; FrameError on anything malformed."""

    def __init__(self, decoder: msgspec.msgpack.Decoder[Any], max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._decoder = decoder
        self._max = max_frame
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        self._buf += data
        out: list[Any] = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= 4:
            (size,) = _HEADER.unpack_from(buf, pos)
            if size > self._max:
                raise FrameTooLarge(f"frame header announces {size} bytes, over the {self._max}-byte limit")
            if len(buf) - pos - 4 < size:
                break
            body = memoryview(buf)[pos + 4 : pos + 4 + size]
            try:
                out.append(self._decoder.decode(body))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise FrameError(f"malformed frame: {exc}") from None
            finally:
                body.release()
            pos += 4 + size
        if pos:
            del buf[:pos]
        return out


class StreamTransport(Protocol):
    """What the bridge needs of its transport. asyncio's and uvloop's stream transports both have it, but
    uvloop's is not a subclass of `asyncio.Transport`: only the methods are relied on, never the class."""

    def write(self, data: bytes) -> None: ...
    def is_closing(self) -> bool: ...
    def abort(self) -> None: ...


class FrameProtocol(asyncio.Protocol):
    """One end of the bridge: decodes frames to `on_message`, reports loss or a bad frame to `on_lost`."""

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

    def data_received(self, data: bytes) -> None:
        if self._lost:
            return
        try:
            messages = self._frames.feed(data)
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
