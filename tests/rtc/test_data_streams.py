"""Text and byte streams between kitewire and the official SDK both ways and kitewire to kitewire:
chunking, per-topic handlers, attributes, a 20 MB file in a bounded window."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from data_peers import Peers, peers, warm_up
from kitewire import rtc
from kitewire.engine.data_channels import SEND_HIGH_WATER
from kitewire.rtc.data_stream import MAX_READER_BUFFER, STREAM_CHUNK_SIZE
from livekit import rtc as lk

__all__ = ["peers"]

pytestmark = [pytest.mark.timeout(240), pytest.mark.filterwarnings("ignore::jwt.InsecureKeyLengthWarning")]

PAIRS = [("kitewire", "official"), ("official", "kitewire"), ("kitewire", "kitewire")]


async def _pair(peers: Peers, sender_kind: str, receiver_kind: str) -> tuple[Any, Any]:
    receiver, sender = await peers.pair((receiver_kind, "receiver"), (sender_kind, "sender"))
    return sender, receiver


def _collect_text(room: Any, topic: str) -> asyncio.Queue[tuple[str, str, Any]]:
    """(sender identity, whole text, info) of each text stream on ``topic``."""
    done: asyncio.Queue[tuple[str, str, Any]] = asyncio.Queue()
    tasks: set[asyncio.Task[None]] = set()

    async def read(reader: Any, identity: str) -> None:
        done.put_nowait((identity, await reader.read_all(), reader.info))

    def handler(reader: Any, identity: str) -> None:
        task = asyncio.ensure_future(read(reader, identity))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    room.register_text_stream_handler(topic, handler)
    return done


@pytest.mark.parametrize(("sender_kind", "receiver_kind"), PAIRS)
async def test_text_streams_by_topic(peers: Peers, sender_kind: str, receiver_kind: str) -> None:
    sender, receiver = await _pair(peers, sender_kind, receiver_kind)
    chat, notes = _collect_text(receiver, "chat"), _collect_text(receiver, "notes")
    local: Any = sender.local_participant

    info = await local.send_text("hello there", topic="chat", attributes={"lang": "en"})
    identity, text, received = await asyncio.wait_for(chat.get(), 20)
    assert (identity, text) == ("sender", "hello there")
    assert received.stream_id == info.stream_id and received.topic == "chat"
    assert received.attributes["lang"] == "en"

    # many chunks, with multi-byte characters across chunk boundaries
    long_text = "añ€😀" * (3 * STREAM_CHUNK_SIZE // 10)
    await local.send_text(long_text, topic="notes")
    identity, text, _ = await asyncio.wait_for(notes.get(), 30)
    assert text == long_text

    writer = await local.stream_text(topic="chat", attributes={"kind": "incremental"})
    for word in ("one ", "two ", "three"):
        await writer.write(word)
    await writer.aclose(attributes={"final": "yes"})
    identity, text, received = await asyncio.wait_for(chat.get(), 20)
    assert text == "one two three"
    assert received.attributes["kind"] == "incremental"

    # a topic nobody handles is ignored; the handled ones keep working
    await local.send_text("nobody listens", topic="elsewhere")
    receiver.unregister_text_stream_handler("notes")
    await local.send_text("dropped", topic="notes")
    await local.send_text("still here", topic="chat")
    assert (await asyncio.wait_for(chat.get(), 20))[1] == "still here"
    assert notes.empty()


@pytest.mark.parametrize(("sender_kind", "receiver_kind"), PAIRS)
async def test_byte_streams_and_a_20_mb_file(
    peers: Peers, sender_kind: str, receiver_kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = await peers.join(receiver_kind, "receiver")
    # the test watches a kitewire sender's data channel queue, which is in this process only
    # with the in-process engine (the receiver keeps the default, the media process)
    with monkeypatch.context() as patch:
        patch.setenv("KITEWIRE_MEDIA_PROCESS", "0")
        sender = await peers.join(sender_kind, "sender")
    await warm_up([receiver, sender])
    results: asyncio.Queue[tuple[str, Any, str, int]] = asyncio.Queue()
    most_buffered = 0

    async def read(reader: Any, identity: str) -> None:
        nonlocal most_buffered
        digest, size = hashlib.sha256(), 0
        async for chunk in reader:
            digest.update(chunk)
            size += len(chunk)
            most_buffered = max(most_buffered, getattr(reader, "_buffered", 0))
        results.put_nowait((identity, reader.info, digest.hexdigest(), size))

    tasks: set[asyncio.Task[None]] = set()

    def handler(reader: Any, identity: str) -> None:
        task = asyncio.ensure_future(read(reader, identity))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    receiver.register_byte_stream_handler("files", handler)
    local: Any = sender.local_participant

    small = os.urandom(40_000)
    await local.send_bytes(small, topic="files", name="blob.bin", attributes={"n": "1"})
    identity, info, digest, size = await asyncio.wait_for(results.get(), 20)
    assert (identity, info.name, size, digest) == ("sender", "blob.bin", len(small), hashlib.sha256(small).hexdigest())
    assert info.attributes["n"] == "1"

    path = tmp_path / "big.bin"
    big = os.urandom(20 * 1024 * 1024)
    path.write_bytes(big)
    expected = hashlib.sha256(big).hexdigest()
    del big
    most_queued = 0
    sending = asyncio.ensure_future(local.send_file(str(path), topic="files"))
    if isinstance(sender, rtc.Room):
        channel = sender._session.engine._wire.data._own["_reliable"]  # type: ignore[union-attr]
        while not sending.done():
            most_queued = max(most_queued, channel.buffered_amount)
            await asyncio.sleep(0.01)
    sent = await asyncio.wait_for(sending, 180)
    identity, info, digest, size = await asyncio.wait_for(results.get(), 180)
    assert (identity, info.name, size, digest) == ("sender", "big.bin", 20 * 1024 * 1024, expected)
    assert info.stream_id == sent.stream_id and info.size == 20 * 1024 * 1024
    # bounded windows: the sender's channel queue and the receiver's unread bytes
    assert most_queued <= SEND_HIGH_WATER + 2 * STREAM_CHUNK_SIZE
    assert most_buffered <= MAX_READER_BUFFER


async def test_writers_refuse_misuse(peers: Peers) -> None:
    sender, _ = await _pair(peers, "kitewire", "official")
    writer = await sender.local_participant.stream_bytes("x", topic="t")
    with pytest.raises(ValueError, match="expected bytes"):
        not_bytes: Any = "text"
        await writer.write(not_bytes)
    await writer.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await writer.write(b"late")
    with pytest.raises(RuntimeError, match="already closed"):
        await writer.aclose()
    room: rtc.Room = sender
    room.register_text_stream_handler("dup", lambda reader, identity: None)
    with pytest.raises(ValueError, match="already set"):
        room.register_text_stream_handler("dup", lambda reader, identity: None)
    assert isinstance(lk.StreamError("x"), ConnectionError) and isinstance(rtc.StreamError("x"), ConnectionError)
