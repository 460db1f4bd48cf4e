"""Odd stream input through the server to kitewire receivers: chunks out of order, streams that
never finish, oversized ones, too many at once, a sender leaving, a reader that does not read.
Each fails its own stream with a clear StreamError and the room keeps working. The odd packets
are sent by a real kitewire participant on its real data channel."""

from __future__ import annotations

import asyncio
import uuid
import zlib
from typing import Any

import pytest
from data_peers import Peers, peers, warm_up
from kitewire import rtc
from kitewire.rtc import _streams, data_stream
from livekit.protocol import models

__all__ = ["peers"]

pytestmark = [pytest.mark.timeout(120), pytest.mark.filterwarnings("ignore::jwt.InsecureKeyLengthWarning")]


class Outcomes:
    """What each byte stream on topic "t" ended with at the receiver: its bytes, or the StreamError."""

    def __init__(self, room: rtc.Room, *, read: bool = True) -> None:
        self.opened = 0
        self.results: asyncio.Queue[tuple[str, bytes | rtc.StreamError]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._read = read
        room.register_byte_stream_handler("t", self._handler)

    def _handler(self, reader: rtc.ByteStreamReader, identity: str) -> None:
        self.opened += 1
        if self._read:
            task = asyncio.ensure_future(self._consume(reader))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _consume(self, reader: rtc.ByteStreamReader) -> None:
        received = b""
        try:
            async for chunk in reader:
                received += chunk
        except rtc.StreamError as exc:
            self.results.put_nowait((reader.info.stream_id, exc))
            return
        self.results.put_nowait((reader.info.stream_id, received))

    async def next(self) -> tuple[str, bytes | rtc.StreamError]:
        return await asyncio.wait_for(self.results.get(), 20)


class RawSender:
    """Hand-made stream packets from a kitewire participant."""

    def __init__(self, room: rtc.Room) -> None:
        self._room = room

    async def send(self, packet: models.DataPacket) -> None:
        await self._room._session.data.send_reliable(packet)

    async def header(self, *, total: int | None = None, **fields: Any) -> str:
        packet = models.DataPacket()
        header = packet.stream_header
        header.stream_id = str(uuid.uuid4())
        header.topic = "t"
        header.mime_type = "application/octet-stream"
        header.byte_header.name = "raw"
        if total is not None:
            header.total_length = total
        for name, value in fields.items():
            setattr(header, name, value)
        await self.send(packet)
        return header.stream_id

    async def chunk(self, stream_id: str, index: int, content: bytes) -> None:
        packet = models.DataPacket()
        packet.stream_chunk.stream_id = stream_id
        packet.stream_chunk.chunk_index = index
        packet.stream_chunk.content = content
        await self.send(packet)

    async def trailer(self, stream_id: str, reason: str = "") -> None:
        packet = models.DataPacket()
        packet.stream_trailer.stream_id = stream_id
        packet.stream_trailer.reason = reason
        await self.send(packet)


async def _setup(peers: Peers, options: rtc.RoomOptions | None = None, *, read: bool = True) -> Any:
    receiver = await peers.kitewire("receiver", options)
    sender = await peers.kitewire("sender")
    await warm_up([receiver, sender])
    return receiver, sender, Outcomes(receiver, read=read), RawSender(sender)


async def _still_works(sender: rtc.Room, outcomes: Outcomes) -> None:
    await sender.local_participant.send_bytes(b"fine", topic="t")
    _stream_id, result = await outcomes.next()
    assert result == b"fine"


async def test_chunks_out_of_order_fail_that_stream(peers: Peers) -> None:
    _, sender, outcomes, raw = await _setup(peers)
    stream_id = await raw.header()
    await raw.chunk(stream_id, 0, b"a")
    await raw.chunk(stream_id, 2, b"c")
    _, error = await outcomes.next()
    assert isinstance(error, rtc.StreamError)
    assert "chunk 2" in error.description and "chunk 1 expected" in error.description
    await raw.chunk(stream_id, 1, b"b")  # late pieces of a failed stream are ignored
    await _still_works(sender, outcomes)


async def test_a_stream_that_never_finishes_fails_after_the_idle_timeout(peers: Peers) -> None:
    receiver, sender, outcomes, raw = await _setup(peers)
    receiver._session.data.streams._idle_timeout = 0.5
    stream_id = await raw.header()
    await raw.chunk(stream_id, 0, b"partial")
    _, error = await outcomes.next()
    assert isinstance(error, rtc.StreamError) and "no data for 0.5 s" in error.description
    assert receiver._session.data.streams.open_streams == 0
    await _still_works(sender, outcomes)


async def test_oversized_streams_fail(peers: Peers) -> None:
    limit = rtc.RoomOptions(data_stream=rtc.DataStreamOptions(max_payload_byte_length=50_000))
    _, sender, outcomes, raw = await _setup(peers, limit)
    await sender.local_participant.send_bytes(b"x" * 60_000, topic="t")
    _, error = await outcomes.next()
    assert isinstance(error, rtc.StreamError) and "limit of 50000 bytes" in error.description
    # more than the header declared
    stream_id = await raw.header(total=10)
    await raw.chunk(stream_id, 0, b"y" * 11)
    _, error = await outcomes.next()
    assert isinstance(error, rtc.StreamError) and "declared" in error.description
    # less than declared, then the trailer
    stream_id = await raw.header(total=10)
    await raw.chunk(stream_id, 0, b"y" * 5)
    await raw.trailer(stream_id)
    _, error = await outcomes.next()
    assert isinstance(error, rtc.StreamError) and "5 of 10 bytes" in error.description
    await _still_works(sender, outcomes)


async def test_an_aborted_stream_reports_the_reason(peers: Peers) -> None:
    _, sender, outcomes, _raw = await _setup(peers)
    writer = await sender.local_participant.stream_bytes("aborted", topic="t")
    await writer.write(b"some")
    await writer.aclose(reason="user cancelled")
    _, error = await outcomes.next()
    assert isinstance(error, rtc.StreamError) and "user cancelled" in error.description
    await _still_works(sender, outcomes)


async def test_open_streams_are_bounded(peers: Peers) -> None:
    receiver, sender, outcomes, raw = await _setup(peers)
    streams = receiver._session.data.streams
    ids = [await raw.header() for _ in range(_streams.MAX_OPEN_STREAMS + 5)]
    for _ in range(100):
        if streams.refused == 5:
            break
        await asyncio.sleep(0.05)
    assert (streams.open_streams, streams.refused, outcomes.opened) == (_streams.MAX_OPEN_STREAMS, 5, 64)
    for stream_id in ids:
        await raw.trailer(stream_id)
    finished = [await outcomes.next() for _ in range(_streams.MAX_OPEN_STREAMS)]
    assert all(result == b"" for _, result in finished)
    await _still_works(sender, outcomes)


async def test_a_sender_leaving_mid_stream_fails_it(peers: Peers) -> None:
    _receiver, sender, outcomes, raw = await _setup(peers)
    stream_id = await raw.header()
    await raw.chunk(stream_id, 0, b"half")
    await asyncio.sleep(0.3)
    await sender.disconnect()
    _, error = await outcomes.next()
    assert isinstance(error, rtc.StreamError) and "sender left" in error.description


async def test_a_reader_that_does_not_read_is_cut_off(peers: Peers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_stream, "MAX_READER_BUFFER", 100_000)
    receiver, sender, _outcomes, _raw = await _setup(peers, read=False)
    readers: list[rtc.ByteStreamReader] = []
    receiver.unregister_byte_stream_handler("t")
    receiver.register_byte_stream_handler("t", lambda reader, identity: readers.append(reader))
    await sender.local_participant.send_bytes(b"z" * 300_000, topic="t")
    for _ in range(100):
        if readers and receiver._session.data.streams.open_streams == 0:
            break
        await asyncio.sleep(0.05)
    with pytest.raises(rtc.StreamError, match="fell behind"):
        async for _ in readers[0]:
            pass


async def test_inline_and_deflated_content_is_read(peers: Peers) -> None:
    _, _sender, outcomes, raw = await _setup(peers)
    await raw.header(inline_content=b"inline bytes")
    assert (await outcomes.next())[1] == b"inline bytes"
    original = b"compressible " * 5000
    deflater = zlib.compressobj(wbits=-15)
    packed = deflater.compress(original) + deflater.flush()
    stream_id = await raw.header(compression=models.DataStream.DEFLATE_RAW)
    half = len(packed) // 2
    await raw.chunk(stream_id, 0, packed[:half])
    await raw.chunk(stream_id, 1, packed[half:])
    await raw.trailer(stream_id)
    assert (await outcomes.next())[1] == original
    stream_id = await raw.header(compression=models.DataStream.DEFLATE_RAW)
    await raw.chunk(stream_id, 0, b"not deflate at all \xff\xfe")
    _, error = await outcomes.next()
    assert isinstance(error, rtc.StreamError) and "DEFLATE" in error.description


async def test_leaving_the_room_ends_open_streams_and_waiting_calls(peers: Peers) -> None:
    receiver, sender, outcomes, raw = await _setup(peers)
    stream_id = await raw.header()
    await raw.chunk(stream_id, 0, b"some")
    for _ in range(100):
        if receiver._session.data.streams.open_streams:
            break
        await asyncio.sleep(0.05)
    release = asyncio.Event()

    async def hold(data: rtc.RpcInvocationData) -> str:
        await release.wait()
        return ""

    sender.local_participant.register_rpc_method("hold", hold)
    call = asyncio.ensure_future(
        receiver.local_participant.perform_rpc(destination_identity="sender", method="hold", payload="")
    )
    await asyncio.sleep(0.5)
    await receiver.disconnect()
    _, error = await outcomes.next()
    assert isinstance(error, rtc.StreamError) and "Disconnected while receiving" in error.description
    with pytest.raises(rtc.RpcError) as ended:
        await asyncio.wait_for(call, 10)
    assert ended.value.code == rtc.RpcError.ErrorCode.RECIPIENT_DISCONNECTED
    release.set()
    with pytest.raises(rtc.PublishDataError, match="not connected"):
        await receiver.local_participant.publish_data(b"after leaving")
