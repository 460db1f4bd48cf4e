"""Shared-memory frame slots and the control channel of the media process."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import threading
from typing import Any

import numpy as np
import pytest
from kitewire.engine.process.channel import Channel
from kitewire.engine.process.frame_link import FrameInfo, FrameLink
from kitewire.engine.process.frame_ring import FrameRing
from kitewire.frames import VideoBufferType, VideoFrame
from livekit.protocol import rtc as signal_pb

SIZE = 64 * 32 * 3 // 2  # a 64x32 I420 frame


def _pair() -> tuple[FrameRing, FrameRing]:
    writer = FrameRing.create(1, SIZE, 2)
    reader = FrameRing.attach(1, os.dup(writer.fd), SIZE, 2)
    return writer, reader


def test_a_read_frame_is_a_view_of_the_slot_and_its_release_waits_for_the_last_view() -> None:
    writer, reader = _pair()
    slot = writer.acquire()
    assert slot is not None
    writer.write(slot, bytes(range(256)) * (SIZE // 256))
    released: list[int] = []
    frame = reader.frame(slot, 64, 32, VideoBufferType.I420, SIZE, lambda: released.append(slot))
    assert frame.to_ndarray().reshape(-1)[:4].tolist() == [0, 1, 2, 3]
    view = frame.to_ndarray().reshape(-1)
    writer.write(slot, b"\xff" * SIZE)  # the writer's memory is the frame's memory: no copy
    assert int(view[0]) == 255
    del frame
    gc.collect()
    assert released == []  # the ndarray still points into the slot
    del view
    gc.collect()
    assert released == [slot]


def test_slots_are_bounded_and_come_back_when_released() -> None:
    writer, _ = _pair()
    first, second = writer.acquire(), writer.acquire()
    assert {first, second} == {0, 1}
    assert writer.acquire() is None
    assert first is not None
    writer.release(first)
    assert writer.acquire() == first


def test_bad_slot_use_raises_value_error() -> None:
    writer, reader = _pair()
    with pytest.raises(ValueError, match="at most"):
        writer.write(0, b"\x00" * (SIZE + 1))
    with pytest.raises(ValueError, match="slot"):
        writer.release(7)
    with pytest.raises(ValueError, match="slot"):
        reader.frame(5, 64, 32, VideoBufferType.I420, SIZE, lambda: None)
    with pytest.raises(ValueError, match="frame slots"):
        FrameRing.create(2, 0, 1)


def test_frames_protobufs_and_releases_cross_the_channel() -> None:
    left_sock, right_sock = socket.socketpair()
    left, right = Channel(left_sock), Channel(right_sock)
    left_link, right_link = FrameLink(left), FrameLink(right)
    got: list[Any] = []
    arrived = threading.Event()
    released = threading.Event()

    def on_right(message: tuple[Any, ...]) -> None:
        if right_link.handle(message):
            return
        if message[0] == "frame":
            frame = right_link.read(message[2], message[3])
            got.append((message[1], frame, message[3]))
        else:
            got.append(message)
        arrived.set()

    def on_left(message: tuple[Any, ...]) -> None:
        left_link.handle(message)
        if message[0] == "release":
            released.set()

    right.start_reader(on_right, lambda: None, "test-right")
    left.start_reader(on_left, lambda: None, "test-left")
    try:
        join = signal_pb.JoinResponse()
        join.room.name = "room-1"
        left.send(("event", 1, "on_join", (join,)))
        assert arrived.wait(5)
        assert got[0][3][0].room.name == "room-1"
        arrived.clear()
        writer = left_link.writer(2)
        pixels = np.arange(SIZE, dtype=np.uint32).astype(np.uint8)
        sent = VideoFrame(64, 32, VideoBufferType.I420, pixels)
        assert writer.send(("key",), sent, FrameInfo(64, 32, VideoBufferType.I420, 123, 1))
        assert arrived.wait(5)
        key, frame, info = got[1]
        assert key == ("key",) and info.timestamp_us == 123 and info.rotation == 1
        assert frame is not None and bytes(frame.data) == pixels.tobytes()
        del frame, got[1]
        gc.collect()
        assert released.wait(5)  # the slot went back to the writer
    finally:
        left.close()
        right.close()


def test_a_reserved_slot_crosses_without_a_copy_and_an_unsent_one_comes_back() -> None:
    left_sock, right_sock = socket.socketpair()
    left = Channel(left_sock)
    link = FrameLink(left)
    messages: list[tuple[Any, ...]] = []
    left.send = lambda message, fds=(): messages.append(message)  # type: ignore[method-assign]
    writer = link.writer(2)
    memory = writer.reserve(SIZE)
    assert memory is not None and memory.shape == (SIZE,)
    memory[:] = 7  # the producer fills the slot itself
    frame = VideoFrame(64, 32, VideoBufferType.I420, memory)
    assert writer.send(("key",), frame, FrameInfo(64, 32, VideoBufferType.I420, 1, 0))
    ring_id, slot, size = messages[-1][2]
    assert messages[-1][0] == "frame" and size == SIZE
    ring = link._writers[ring_id]
    assert ring.slot_array(slot, SIZE).tolist() == memory.tolist()  # announced where it was written
    # the sent slot now belongs to the reader: dropping our frame does not free it
    del frame, memory
    gc.collect()
    assert ring.free_slots == 1
    # a reservation never sent goes back when its memory is dropped
    unsent = writer.reserve(SIZE)
    assert unsent is not None and ring.free_slots == 0
    assert writer.reserve(SIZE) is None  # every slot taken
    del unsent
    gc.collect()
    assert ring.free_slots == 1
    left.close()
    right_sock.close()


def test_a_reservation_in_a_ring_replaced_since_is_sent_as_a_copy() -> None:
    left_sock, right_sock = socket.socketpair()
    left = Channel(left_sock)
    link = FrameLink(left)
    messages: list[tuple[Any, ...]] = []
    left.send = lambda message, fds=(): messages.append(message)  # type: ignore[method-assign]
    writer = link.writer(2)
    small = writer.reserve(SIZE)
    assert small is not None
    small[:] = 3
    big = np.full(SIZE * 4, 9, dtype=np.uint8)  # a bigger frame replaces the ring
    assert writer.send(("key",), VideoFrame(128, 64, VideoBufferType.I420, big), FrameInfo(128, 64, 0, 1, 0))
    assert writer.send(("key",), VideoFrame(64, 32, VideoBufferType.I420, small), FrameInfo(64, 32, 0, 2, 0))
    ring_id, slot, size = messages[-1][2]
    ring = link._writers[ring_id]
    assert ring.slot_size == SIZE * 4 and size == SIZE
    assert set(ring.slot_array(slot, SIZE).tolist()) == {3}
    left.close()
    right_sock.close()


async def test_the_loop_reader_handles_messages_and_descriptors_on_the_loop_and_reports_the_end() -> None:
    loop = asyncio.get_running_loop()
    left_sock, right_sock = socket.socketpair()
    left, right = Channel(left_sock), Channel(right_sock)
    got: list[tuple[tuple[Any, ...], bool]] = []
    ended = asyncio.Event()

    def on_message(message: tuple[Any, ...]) -> None:
        got.append((message, threading.current_thread() is threading.main_thread()))

    right.start_loop_reader(loop, on_message, ended.set)
    read_end, write_end = os.pipe()
    try:
        # sent from another thread while the loop waits: the loop itself reads
        await asyncio.to_thread(left.send, ("fd", 1), [read_end])
        await asyncio.to_thread(left.send, ("big", b"x" * 600_000))
        for _ in range(200):
            if len(got) == 2:
                break
            await asyncio.sleep(0.01)
        assert [message[0] for message, _ in got] == ["fd", "big"]
        assert all(on_loop for _, on_loop in got)
        assert len(got[1][0][1]) == 600_000
        passed = right.take_fd()
        os.write(write_end, b"!")
        assert os.read(passed, 1) == b"!"
        os.close(passed)
        left.close()
        await asyncio.wait_for(ended.wait(), 5)
        assert right.closed
    finally:
        os.close(read_end)
        os.close(write_end)
        left.close()
        right.close()
