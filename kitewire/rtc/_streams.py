"""Incoming text and byte streams: headers, chunks and trailers to readers and per-topic handlers.

A header opens a stream when a handler is registered for its topic (and kind);
chunks must then arrive numbered 0, 1, 2, ... (the reliable channel is
ordered, so a gap or repeat means a broken sender: the stream fails), and the
trailer ends it. Everything is bounded: at most :data:`MAX_OPEN_STREAMS`
streams are open at once, a stream that gets no packet for
:data:`STREAM_IDLE_TIMEOUT` seconds fails, a stream larger than the size its
header declared (or the room's ``max_payload_byte_length``) fails, and each
reader buffers at most :data:`~kitewire.rtc.data_stream.MAX_READER_BUFFER`
unread bytes. Content compressed with raw DEFLATE (``DEFLATE_RAW``) or inlined
in the header is read as LiveKit's newer SDKs send it.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from dataclasses import dataclass

from livekit.protocol import models

from .data_stream import (
    STREAM_CHUNK_SIZE,
    BaseStreamInfo,
    ByteStreamHandler,
    ByteStreamInfo,
    ByteStreamReader,
    StreamError,
    TextStreamHandler,
    TextStreamInfo,
    TextStreamReader,
)

__all__ = ["MAX_OPEN_STREAMS", "STREAM_IDLE_TIMEOUT", "StreamReceiver"]

logger = logging.getLogger("kitewire.rtc")

#: Incoming streams open at once, over all senders.
MAX_OPEN_STREAMS = 64
#: Seconds an open stream may go without a chunk before it fails.
STREAM_IDLE_TIMEOUT = 30.0
# Largest content one chunk may inflate to (a chunk is at most 15 000 bytes compressed).
_MAX_INFLATED_CHUNK = 64 * STREAM_CHUNK_SIZE
_DISCONNECTED = "Disconnected while receiving"


@dataclass
class _Incoming:
    reader: TextStreamReader | ByteStreamReader
    sender: str
    declared: int | None
    inflater: zlib._Decompress | None
    next_index: int = 0
    received: int = 0
    idle: asyncio.TimerHandle | None = None


class StreamReceiver:
    """One room's incoming streams and the handlers registered for them."""

    def __init__(self, max_payload: int | None = None, idle_timeout: float = STREAM_IDLE_TIMEOUT) -> None:
        self.text_handlers: dict[str, TextStreamHandler] = {}
        self.byte_handlers: dict[str, ByteStreamHandler] = {}
        self._max_payload = max_payload
        self._idle_timeout = idle_timeout
        self._open: dict[str, _Incoming] = {}
        self.refused = 0

    @property
    def open_streams(self) -> int:
        """Streams being received now."""
        return len(self._open)

    def on_packet(self, packet: models.DataPacket) -> None:
        """A stream_header, stream_chunk or stream_trailer from ``packet.participant_identity``."""
        kind = packet.WhichOneof("value")
        if kind == "stream_header":
            self._open_stream(packet.participant_identity, packet.stream_header)
        elif kind == "stream_chunk":
            self._on_chunk(packet.stream_chunk)
        elif kind == "stream_trailer":
            self._on_trailer(packet.stream_trailer)

    # -- opening ---------------------------------------------------------------------

    def _open_stream(self, sender: str, header: models.DataStream.Header) -> None:
        stream_id = header.stream_id
        if not stream_id or stream_id in self._open:
            return
        text = header.WhichOneof("content_header") == "text_header" or (
            header.WhichOneof("content_header") is None and header.mime_type.startswith("text/")
        )
        handlers: dict[str, TextStreamHandler] | dict[str, ByteStreamHandler]
        handlers = self.text_handlers if text else self.byte_handlers
        handler = handlers.get(header.topic)
        if handler is None:
            logger.info("ignoring %s stream on topic %r: no handler", "text" if text else "byte", header.topic)
            return
        if len(self._open) >= MAX_OPEN_STREAMS:
            self._refuse(f"stream {stream_id} from {sender}: {MAX_OPEN_STREAMS} streams are open already")
            return
        declared = header.total_length if header.HasField("total_length") else None
        if header.encryption_type != models.Encryption.NONE:
            self._refuse(f"stream {stream_id} from {sender}: encrypted streams are not supported")
            return
        if header.compression not in (models.DataStream.NONE, models.DataStream.DEFLATE_RAW):
            self._refuse(f"stream {stream_id} from {sender}: unknown compression {header.compression}")
            return
        inflater = zlib.decompressobj(-15) if header.compression == models.DataStream.DEFLATE_RAW else None
        reader = self._reader(header, text, declared)
        incoming = _Incoming(reader, sender, declared, inflater)
        self._open[stream_id] = incoming
        self._touch(stream_id, incoming)
        try:
            handler(reader, sender)  # type: ignore[arg-type]  # the kinds match by construction
        except Exception:
            logger.exception("stream handler for topic %r raised", header.topic)
        if header.HasField("inline_content"):
            self._take(stream_id, incoming, header.inline_content)
            if stream_id in self._open:
                self._end(stream_id, None)

    @staticmethod
    def _reader(
        header: models.DataStream.Header, text: bool, declared: int | None
    ) -> TextStreamReader | ByteStreamReader:
        common = BaseStreamInfo(
            stream_id=header.stream_id,
            mime_type=header.mime_type,
            topic=header.topic,
            timestamp=header.timestamp,
            size=declared,
            attributes=dict(header.attributes),
        )
        fields = vars(common)
        if text:
            return TextStreamReader(TextStreamInfo(**fields, attachments=list(header.text_header.attached_stream_ids)))
        return ByteStreamReader(ByteStreamInfo(**fields, name=header.byte_header.name))

    def _refuse(self, why: str) -> None:
        self.refused += 1
        logger.warning("refusing %s", why)

    # -- chunks and trailers -------------------------------------------------------------

    def _on_chunk(self, chunk: models.DataStream.Chunk) -> None:
        incoming = self._open.get(chunk.stream_id)
        if incoming is None:
            return
        if chunk.chunk_index != incoming.next_index:
            self._fail(
                chunk.stream_id,
                f"chunk {chunk.chunk_index} of stream {chunk.stream_id} arrived, chunk {incoming.next_index} expected",
            )
            return
        if chunk.HasField("iv"):
            self._fail(chunk.stream_id, f"stream {chunk.stream_id}: encrypted chunks are not supported")
            return
        incoming.next_index += 1
        self._touch(chunk.stream_id, incoming)
        self._take(chunk.stream_id, incoming, chunk.content)

    def _take(self, stream_id: str, incoming: _Incoming, content: bytes) -> None:
        if incoming.inflater is not None:
            try:
                content = incoming.inflater.decompress(content, _MAX_INFLATED_CHUNK)
            except zlib.error as exc:
                self._fail(stream_id, f"stream {stream_id}: bad DEFLATE data ({exc})")
                return
            if incoming.inflater.unconsumed_tail:
                self._fail(stream_id, f"stream {stream_id}: a chunk inflates to more than {_MAX_INFLATED_CHUNK} bytes")
                return
        incoming.received += len(content)
        if incoming.declared is not None and incoming.received > incoming.declared:
            self._fail(stream_id, f"stream {stream_id}: more than the {incoming.declared} bytes its header declared")
            return
        if self._max_payload is not None and incoming.received > self._max_payload:
            self._fail(stream_id, f"stream {stream_id}: over the room's limit of {self._max_payload} bytes")
            return
        if not incoming.reader._push(content):
            self._drop(stream_id)  # the reader failed (fell behind) or was closed: stop collecting

    def _on_trailer(self, trailer: models.DataStream.Trailer) -> None:
        incoming = self._open.get(trailer.stream_id)
        if incoming is None:
            return
        if incoming.reader.info.attributes is None:
            incoming.reader.info.attributes = {}
        incoming.reader.info.attributes.update(trailer.attributes)
        if trailer.reason:
            self._fail(trailer.stream_id, f"the sender ended stream {trailer.stream_id}: {trailer.reason}")
            return
        text = isinstance(incoming.reader, TextStreamReader)
        if incoming.declared is not None and incoming.received < incoming.declared and not text:
            self._fail(
                trailer.stream_id,
                f"stream {trailer.stream_id} ended after {incoming.received} of {incoming.declared} bytes",
            )
            return
        self._end(trailer.stream_id, None)

    # -- ending ------------------------------------------------------------------------

    def _touch(self, stream_id: str, incoming: _Incoming) -> None:
        if incoming.idle is not None:
            incoming.idle.cancel()
        incoming.idle = asyncio.get_running_loop().call_later(
            self._idle_timeout,
            self._fail,
            stream_id,
            f"stream {stream_id}: no data for {self._idle_timeout} s",
        )

    def _drop(self, stream_id: str) -> _Incoming | None:
        incoming = self._open.pop(stream_id, None)
        if incoming is not None and incoming.idle is not None:
            incoming.idle.cancel()
        return incoming

    def _end(self, stream_id: str, error: str | None) -> None:
        incoming = self._drop(stream_id)
        if incoming is None:
            return
        if error is None:
            incoming.reader._finish()
        else:
            incoming.reader._fail(StreamError(error))

    def _fail(self, stream_id: str, error: str) -> None:
        logger.warning("%s", error)
        self._end(stream_id, error)

    def participant_left(self, identity: str) -> None:
        """Streams from ``identity`` that did not finish fail."""
        for stream_id, incoming in list(self._open.items()):
            if incoming.sender == identity:
                self._end(stream_id, f"{identity} left before stream {stream_id} finished")

    def close(self) -> None:
        """The room disconnected: every open stream fails."""
        for stream_id in list(self._open):
            self._end(stream_id, _DISCONNECTED)
