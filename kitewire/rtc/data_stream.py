"""Text and byte streams between participants (livekit.rtc.data_stream's names).

A stream is a header packet, numbered chunk packets of at most
:data:`STREAM_CHUNK_SIZE` bytes and a trailer, all on the reliable data
channel, as LiveKit's SDKs send them. Writers here send chunk by chunk, each
send waiting while the channel's queue is full, so a stream of any size holds
one chunk at a time. Readers hold at most :data:`MAX_READER_BUFFER` bytes that
the application has not read yet; a reader that falls further behind ends
with :class:`StreamError` instead of growing. The receiving side (which stream
goes to which handler, chunk order, idle streams) is :mod:`kitewire.rtc._streams`.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from livekit.protocol import models

__all__ = [
    "MAX_READER_BUFFER",
    "STREAM_CHUNK_SIZE",
    "BaseStreamInfo",
    "BaseStreamWriter",
    "ByteStreamHandler",
    "ByteStreamInfo",
    "ByteStreamReader",
    "ByteStreamWriter",
    "StreamError",
    "TextStreamHandler",
    "TextStreamInfo",
    "TextStreamReader",
    "TextStreamWriter",
]

#: Bytes of content per chunk packet (LiveKit's chunk size).
STREAM_CHUNK_SIZE = 15_000
#: Received bytes a reader keeps for the application at most.
MAX_READER_BUFFER = 16 * 1024 * 1024

SendPacket = Callable[[models.DataPacket], Coroutine[Any, Any, None]]


class StreamError(ConnectionError):
    """A stream failed: the sender aborted it or left, chunks came out of order or
    stopped coming, it exceeded a limit, or the room disconnected."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


@dataclass
class BaseStreamInfo:
    """What the header of a stream says."""

    stream_id: str
    mime_type: str
    topic: str
    timestamp: int
    """Milliseconds since the epoch when the stream was opened."""
    size: int | None
    """Total bytes, when the sender declared them."""
    attributes: dict[str, str] | None


@dataclass
class TextStreamInfo(BaseStreamInfo):
    """A text stream's header."""

    attachments: list[str] = field(default_factory=list)


@dataclass
class ByteStreamInfo(BaseStreamInfo):
    """A byte stream's header."""

    name: str = ""


# -- reading ---------------------------------------------------------------------------


class _Reader:
    """The chunks of one incoming stream, buffered (boundedly) until read."""

    def __init__(self) -> None:
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._ended = False
        self._error: StreamError | None = None
        self._wake = asyncio.Event()
        self._closed = False

    def _push(self, content: bytes) -> bool:
        """Queue received content; False (and the reader fails) when the application fell too far behind."""
        if self._ended or self._closed:
            return not self._closed
        if self._buffered + len(content) > MAX_READER_BUFFER:
            self._fail(StreamError(f"the reader fell behind: more than {MAX_READER_BUFFER} unread bytes"))
            return False
        self._chunks.append(content)
        self._buffered += len(content)
        self._wake.set()
        return True

    def _finish(self) -> None:
        self._ended = True
        self._wake.set()

    def _fail(self, error: StreamError) -> None:
        if self._ended:
            return
        self._chunks.clear()
        self._buffered = 0
        self._error = error
        self._ended = True
        self._wake.set()

    async def _next_chunk(self) -> bytes:
        while True:
            if self._chunks:
                content = self._chunks.popleft()
                self._buffered -= len(content)
                if content:
                    return content
                continue
            if self._closed or self._ended:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()

    def close(self) -> None:
        """Stop reading: buffered and later chunks are dropped."""
        self._closed = True
        self._chunks.clear()
        self._buffered = 0
        self._wake.set()

    async def aclose(self) -> None:
        """:meth:`close`, awaitable."""
        self.close()

    @property
    def closed(self) -> bool:
        """True once the application closed the reader."""
        return self._closed


class TextStreamReader(_Reader):
    """An incoming text stream: ``async for text in reader`` or ``await reader.read_all()``.

    Ends with :class:`StreamError` instead of ``StopAsyncIteration`` when the stream fails.
    """

    def __init__(self, info: TextStreamInfo) -> None:
        super().__init__()
        self._info = info
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")

    @property
    def info(self) -> TextStreamInfo:
        """The stream's header (attributes updated by its trailer)."""
        return self._info

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        while True:
            content = await self._next_chunk()
            try:
                text = self._decoder.decode(content)
            except UnicodeDecodeError as exc:
                error = StreamError(f"text stream {self._info.stream_id}: expected UTF-8, got {exc.reason}")
                self._fail(error)
                raise error from None
            if text:
                return text

    async def read_all(self) -> str:
        """Everything until the stream ends."""
        return "".join([text async for text in self])


class ByteStreamReader(_Reader):
    """An incoming byte stream: ``async for chunk in reader``.

    Ends with :class:`StreamError` instead of ``StopAsyncIteration`` when the stream fails.
    """

    def __init__(self, info: ByteStreamInfo, capacity: int = 0) -> None:
        super().__init__()
        self._info = info

    @property
    def info(self) -> ByteStreamInfo:
        """The stream's header (attributes updated by its trailer)."""
        return self._info

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        return await self._next_chunk()


TextStreamHandler = Callable[[TextStreamReader, str], None]
"""Called with the reader and the sender's identity when a text stream opens."""
ByteStreamHandler = Callable[[ByteStreamReader, str], None]
"""Called with the reader and the sender's identity when a byte stream opens."""


# -- writing ---------------------------------------------------------------------------


def _new_header(
    *,
    stream_id: str | None,
    topic: str,
    mime_type: str,
    attributes: dict[str, str] | None,
    total_size: int | None,
) -> models.DataStream.Header:
    header = models.DataStream.Header()
    header.stream_id = stream_id or str(uuid.uuid4())
    header.timestamp = int(time.time() * 1000)
    header.topic = topic
    header.mime_type = mime_type
    header.attributes.update(attributes or {})
    if total_size is not None:
        if total_size < 0:
            raise ValueError(f"total_size: expected a byte count >= 0, got {total_size}")
        header.total_length = total_size
    return header


class BaseStreamWriter:
    """One outgoing stream: header on open, numbered chunks, trailer on close."""

    def __init__(
        self, send: SendPacket, header: models.DataStream.Header, destination_identities: list[str] | None
    ) -> None:
        self._send_packet = send
        self._header = header
        self._destinations = list(destination_identities or [])
        self._next_index = 0
        self._lock = asyncio.Lock()
        self._opened = False
        self._closed = False

    def _packet(self) -> models.DataPacket:
        packet = models.DataPacket()
        packet.kind = models.DataPacket.RELIABLE
        packet.destination_identities.extend(self._destinations)
        return packet

    async def _send_header(self) -> None:
        packet = self._packet()
        packet.stream_header.CopyFrom(self._header)
        await self._send_packet(packet)
        self._opened = True

    async def _write_pieces(self, pieces: Iterable[bytes]) -> None:
        async with self._lock:
            if self._closed:
                raise RuntimeError("cannot write after the stream is closed")
            if not self._opened:
                raise RuntimeError("the stream is not open")
            for piece in pieces:
                packet = self._packet()
                chunk = packet.stream_chunk
                chunk.stream_id = self._header.stream_id
                chunk.chunk_index = self._next_index
                chunk.content = piece
                await self._send_packet(packet)
                self._next_index += 1

    async def aclose(self, *, reason: str = "", attributes: dict[str, str] | None = None) -> None:
        """End the stream (a non-empty ``reason`` tells the receiver it was cut short)."""
        async with self._lock:
            if self._closed:
                raise RuntimeError("the stream is already closed")
            if not self._opened:
                raise RuntimeError("the stream is not open")
            self._closed = True
            packet = self._packet()
            trailer = packet.stream_trailer
            trailer.stream_id = self._header.stream_id
            trailer.reason = reason
            trailer.attributes.update(attributes or {})
            await self._send_packet(packet)


def split_utf8(text: str, size: int = STREAM_CHUNK_SIZE) -> Iterator[bytes]:
    """``text`` as UTF-8 pieces of at most ``size`` bytes, never cutting a character."""
    if size < 4:
        raise ValueError(f"size: expected at least 4 bytes (the longest UTF-8 character), got {size}")
    data = text.encode("utf-8")
    start = 0
    while start < len(data):
        end = min(start + size, len(data))
        # step back over continuation bytes (10xxxxxx) so the piece ends on a character
        while end < len(data) and end > start and (data[end] & 0xC0) == 0x80:
            end -= 1
        yield data[start:end]
        start = end


def split_bytes(data: bytes | bytearray | memoryview, size: int = STREAM_CHUNK_SIZE) -> Iterator[bytes]:
    """``data`` in pieces of at most ``size`` bytes (copied one piece at a time)."""
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield bytes(view[start : start + size])


class TextStreamWriter(BaseStreamWriter):
    """An outgoing text stream from :meth:`LocalParticipant.stream_text`."""

    def __init__(
        self,
        send: SendPacket,
        *,
        topic: str = "",
        attributes: dict[str, str] | None = None,
        stream_id: str | None = None,
        total_size: int | None = None,
        reply_to_id: str | None = None,
        destination_identities: list[str] | None = None,
        attachments: list[str] | None = None,
    ) -> None:
        header = _new_header(
            stream_id=stream_id, topic=topic, mime_type="text/plain", attributes=attributes, total_size=total_size
        )
        header.text_header.operation_type = models.DataStream.CREATE
        header.text_header.reply_to_stream_id = reply_to_id or ""
        header.text_header.attached_stream_ids.extend(attachments or [])
        super().__init__(send, header, destination_identities)
        self._info = TextStreamInfo(
            stream_id=header.stream_id,
            mime_type=header.mime_type,
            topic=topic,
            timestamp=header.timestamp,
            size=total_size,
            attributes=dict(attributes or {}),
            attachments=list(attachments or []),
        )

    @property
    def info(self) -> TextStreamInfo:
        """The stream's header."""
        return self._info

    async def write(self, text: str) -> None:
        """Send ``text`` (in chunks of at most :data:`STREAM_CHUNK_SIZE` UTF-8 bytes)."""
        if not isinstance(text, str):
            raise ValueError(f"text stream: expected str, got {type(text).__name__}")
        await self._write_pieces(split_utf8(text))


class ByteStreamWriter(BaseStreamWriter):
    """An outgoing byte stream from :meth:`LocalParticipant.stream_bytes`."""

    def __init__(
        self,
        send: SendPacket,
        *,
        name: str,
        topic: str = "",
        attributes: dict[str, str] | None = None,
        stream_id: str | None = None,
        total_size: int | None = None,
        mime_type: str = "application/octet-stream",
        destination_identities: list[str] | None = None,
    ) -> None:
        header = _new_header(
            stream_id=stream_id, topic=topic, mime_type=mime_type, attributes=attributes, total_size=total_size
        )
        header.byte_header.name = name
        super().__init__(send, header, destination_identities)
        self._info = ByteStreamInfo(
            stream_id=header.stream_id,
            mime_type=mime_type,
            topic=topic,
            timestamp=header.timestamp,
            size=total_size,
            attributes=dict(attributes or {}),
            name=name,
        )

    @property
    def info(self) -> ByteStreamInfo:
        """The stream's header."""
        return self._info

    async def write(self, data: bytes) -> None:
        """Send ``data`` (in chunks of at most :data:`STREAM_CHUNK_SIZE` bytes)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"byte stream: expected bytes, got {type(data).__name__}")
        await self._write_pieces(split_bytes(data))
