"""LocalParticipant's data side: data packets, DTMF, transcriptions, RPC, streams and its own state.

A mixin of :class:`~kitewire.rtc.participant.LocalParticipant`, with livekit.rtc's
signatures; it calls the room's session through :class:`DataLink`, never Room privates.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
from typing import Protocol, TypeVar, overload

from livekit.protocol import models

from ._rpc import RpcEndpoint, RpcHandler
from .data_stream import (
    STREAM_CHUNK_SIZE,
    ByteStreamInfo,
    ByteStreamWriter,
    StreamError,
    TextStreamInfo,
    TextStreamWriter,
)
from .rpc import RpcCallInfo, RpcInterceptor
from .transcription import Transcription

__all__ = ["DataLink", "LocalDataMixin", "PublishDTMFError", "PublishDataError", "PublishTranscriptionError"]

HandlerT = TypeVar("HandlerT", bound=RpcHandler)
_Handler = TypeVar("_Handler", bound=RpcHandler)


class RpcRegistration(Protocol):
    """What ``register_rpc_method(name)`` returns: a decorator that registers and returns the handler."""

    def __call__(self, handler: HandlerT, /) -> HandlerT: ...


class PublishDataError(Exception):
    """A data packet could not be sent (the room is not connected, or the channel failed)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PublishDTMFError(PublishDataError):
    """A DTMF digit could not be sent."""


class PublishTranscriptionError(PublishDataError):
    """A transcription could not be sent."""


class DataLink(Protocol):
    """What a LocalParticipant's data side asks of the room's session."""

    @property
    def rpc(self) -> RpcEndpoint:
        """The participant's RPC endpoint."""

    async def publish_packet(self, packet: models.DataPacket, reliable: bool) -> None:
        """Send ``packet``; ValueError when oversized, PublishDataError when it cannot go."""

    async def update_metadata(
        self, *, metadata: str | None = None, name: str | None = None, attributes: dict[str, str] | None = None
    ) -> None:
        """Ask the server for the change and wait for its answer; RuntimeError when refused or unanswered."""


def _check_identities(identities: object) -> None:
    if not isinstance(identities, (list, tuple)) or not all(isinstance(i, str) for i in identities):
        raise ValueError(f"destination_identities: expected a list of identity strings, got {identities!r}")


class LocalDataMixin:
    """The data methods of :class:`~kitewire.rtc.participant.LocalParticipant`."""

    _data_link: DataLink

    # -- data packets ------------------------------------------------------------------

    async def publish_data(
        self,
        payload: bytes | str,
        *,
        reliable: bool = True,
        destination_identities: list[str] = [],  # noqa: B006 (livekit.rtc's signature; never mutated)
        topic: str = "",
    ) -> None:
        """Send ``payload`` to everyone in the room, or only to ``destination_identities``.

        ``reliable=False`` uses the lossy channel (unordered, no retransmission).
        Raises ValueError for a payload too large for one packet (about 60 kB; use
        :meth:`send_bytes` for more) and PublishDataError when it cannot be sent."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise ValueError(f"payload: expected bytes or str, got {type(payload).__name__}")
        _check_identities(destination_identities)
        if not isinstance(topic, str):
            raise ValueError(f"topic: expected str, got {type(topic).__name__}")
        packet = models.DataPacket()
        packet.destination_identities.extend(destination_identities)
        user = packet.user
        user.payload = bytes(payload)
        user.destination_identities.extend(destination_identities)
        if topic:
            user.topic = topic
        await self._data_link.publish_packet(packet, reliable)

    async def publish_dtmf(self, *, code: int, digit: str) -> None:
        """Send a SIP DTMF digit to the room (``sip_dtmf_received`` on the other side)."""
        packet = models.DataPacket()
        packet.sip_dtmf.code = code
        packet.sip_dtmf.digit = digit
        try:
            await self._data_link.publish_packet(packet, True)
        except PublishDataError as exc:
            raise PublishDTMFError(exc.message) from None

    async def publish_transcription(self, transcription: Transcription) -> None:
        """Send transcribed segments of a participant's track (``transcription_received`` on the other side)."""
        packet = models.DataPacket()
        message = packet.transcription
        message.transcribed_participant_identity = transcription.participant_identity
        message.track_id = transcription.track_sid
        for segment in transcription.segments:
            entry = message.segments.add()
            entry.id = segment.id
            entry.text = segment.text
            entry.start_time = segment.start_time
            entry.end_time = segment.end_time
            entry.final = segment.final
            entry.language = segment.language
        try:
            await self._data_link.publish_packet(packet, True)
        except PublishDataError as exc:
            raise PublishTranscriptionError(exc.message) from None

    # -- own state ---------------------------------------------------------------------

    async def set_metadata(self, metadata: str) -> None:
        """Change this participant's metadata (needs ``canUpdateOwnMetadata``); returns once the server agreed.

        Raises RuntimeError when the server refuses or does not answer within 5 s."""
        await self._data_link.update_metadata(metadata=metadata)

    async def set_name(self, name: str) -> None:
        """Change this participant's name (needs ``canUpdateOwnMetadata``); see :meth:`set_metadata`."""
        await self._data_link.update_metadata(name=name)

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        """Set attributes, keeping the others; an empty value deletes a key (needs ``canUpdateOwnMetadata``)."""
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()):
            raise ValueError("attributes: expected a dict of str to str")
        await self._data_link.update_metadata(attributes=dict(attributes))

    # -- RPC ---------------------------------------------------------------------------

    async def perform_rpc(
        self,
        *,
        destination_identity: str,
        method: str,
        payload: str,
        response_timeout: float | None = None,
        max_round_trip_latency: float | None = None,
    ) -> str:
        """Call ``method`` on ``destination_identity`` and return its response payload.

        ``response_timeout`` (default 15 s, at least ``max_round_trip_latency`` + 1 s,
        as in livekit) bounds the whole call and ``max_round_trip_latency``
        (default 7 s) the wait for the callee's acknowledgement; the callee's
        handler gets the difference. Raises RpcError (``.code`` one of RpcError.ErrorCode for
        built-in failures, or the code the handler raised)."""
        call = RpcCallInfo(destination_identity, method, payload, response_timeout, max_round_trip_latency)
        return await self._data_link.rpc.perform(call)

    @overload
    def register_rpc_method(self, method_name: str, handler: HandlerT) -> HandlerT: ...

    @overload
    def register_rpc_method(self, method_name: str, handler: None = None) -> RpcRegistration: ...

    def register_rpc_method(self, method_name: str, handler: HandlerT | None = None) -> HandlerT | RpcRegistration:
        """Serve calls of ``method_name`` with ``handler`` (sync or async, given an
        RpcInvocationData, returning the response string). Usable as a decorator.

        An RpcError the handler raises reaches the caller as it is; any other
        exception as APPLICATION_ERROR (1500)."""

        def register(function: _Handler) -> _Handler:
            if not callable(function):
                raise ValueError(f"handler: expected a callable, got {type(function).__name__}")
            self._data_link.rpc.handlers[method_name] = function
            return function

        return register(handler) if handler is not None else register

    def unregister_rpc_method(self, method: str) -> None:
        """Stop serving ``method`` (callers then get UNSUPPORTED_METHOD, 1400)."""
        self._data_link.rpc.handlers.pop(method, None)

    def add_rpc_interceptor(self, interceptor: RpcInterceptor) -> None:
        """Wrap every call made and handled from now on; the first added is outermost."""
        self._data_link.rpc.interceptors.append(interceptor)

    def remove_rpc_interceptor(self, interceptor: RpcInterceptor) -> None:
        """Remove an interceptor added earlier (no error when it is not there)."""
        if interceptor in self._data_link.rpc.interceptors:
            self._data_link.rpc.interceptors.remove(interceptor)

    # -- streams -------------------------------------------------------------------------

    async def _stream_send(self, packet: models.DataPacket) -> None:
        try:
            await self._data_link.publish_packet(packet, True)
        except PublishDataError as exc:
            raise StreamError(exc.message) from None

    async def stream_text(
        self,
        *,
        destination_identities: list[str] | None = None,
        topic: str = "",
        attributes: dict[str, str] | None = None,
        stream_id: str | None = None,
        reply_to_id: str | None = None,
        total_size: int | None = None,
        sender_identity: str | None = None,
    ) -> TextStreamWriter:
        """Open a text stream; ``write`` chunks to it and ``aclose`` it. Raises StreamError.

        ``sender_identity`` is accepted for livekit's signature; the server names the sender."""
        if destination_identities is not None:
            _check_identities(destination_identities)
        writer = TextStreamWriter(
            self._stream_send,
            topic=topic,
            attributes=attributes,
            stream_id=stream_id,
            total_size=total_size,
            reply_to_id=reply_to_id,
            destination_identities=destination_identities,
        )
        await writer._send_header()
        return writer

    async def send_text(
        self,
        text: str,
        *,
        destination_identities: list[str] | None = None,
        topic: str = "",
        attributes: dict[str, str] | None = None,
        reply_to_id: str | None = None,
        compress: bool = True,
    ) -> TextStreamInfo:
        """Send ``text`` as one whole text stream (``compress`` is accepted; kitewire sends it as is)."""
        writer = await self.stream_text(
            destination_identities=destination_identities,
            topic=topic,
            attributes=attributes,
            reply_to_id=reply_to_id,
            total_size=len(text.encode("utf-8")),
        )
        await writer.write(text)
        await writer.aclose()
        return writer.info

    async def stream_bytes(
        self,
        name: str,
        *,
        total_size: int | None = None,
        mime_type: str = "application/octet-stream",
        attributes: dict[str, str] | None = None,
        stream_id: str | None = None,
        destination_identities: list[str] | None = None,
        topic: str = "",
    ) -> ByteStreamWriter:
        """Open a byte stream; ``write`` chunks to it and ``aclose`` it. Raises StreamError."""
        if destination_identities is not None:
            _check_identities(destination_identities)
        writer = ByteStreamWriter(
            self._stream_send,
            name=name,
            topic=topic,
            attributes=attributes,
            stream_id=stream_id,
            total_size=total_size,
            mime_type=mime_type,
            destination_identities=destination_identities,
        )
        await writer._send_header()
        return writer

    async def send_bytes(
        self,
        data: bytes,
        *,
        topic: str = "",
        name: str | None = None,
        mime_type: str | None = None,
        destination_identities: list[str] | None = None,
        attributes: dict[str, str] | None = None,
        stream_id: str | None = None,
        compress: bool = True,
    ) -> ByteStreamInfo:
        """Send ``data`` as one whole byte stream (``name`` defaults to "unknown")."""
        writer = await self.stream_bytes(
            name if name is not None else "unknown",
            total_size=len(data),
            mime_type=mime_type or "application/octet-stream",
            attributes=attributes,
            stream_id=stream_id,
            destination_identities=destination_identities,
            topic=topic,
        )
        await writer.write(data)
        await writer.aclose()
        return writer.info

    async def send_file(
        self,
        file_path: str,
        *,
        topic: str = "",
        destination_identities: list[str] | None = None,
        attributes: dict[str, str] | None = None,
        stream_id: str | None = None,
        compress: bool = True,
    ) -> ByteStreamInfo:
        """Send a file as a byte stream named after it, read one chunk at a time (any size)."""
        size = os.path.getsize(file_path)
        mime_type, _ = mimetypes.guess_type(file_path)
        writer = await self.stream_bytes(
            os.path.basename(file_path),
            total_size=size,
            mime_type=mime_type or "application/octet-stream",
            attributes=attributes,
            stream_id=stream_id,
            destination_identities=destination_identities,
            topic=topic,
        )
        loop = asyncio.get_running_loop()
        with open(file_path, "rb") as file:
            while True:
                piece = await loop.run_in_executor(None, file.read, STREAM_CHUNK_SIZE * 16)
                if not piece:
                    break
                await writer.write(piece)
        await writer.aclose()
        return writer.info
